#!/usr/bin/env python3
"""Full-forward throughput of the LibTorch runtime beside HF transformers (eager and sdpa), on
random-weight checkpoints of three sizes made by `foresight-model init`, in one run.

Work per row: one causal forward (all layers + logits) over `tokens` random ids, fp32, CPU; best of
`--repeats` timed runs after one warm-up, for both implementations.

    scripts/build.sh && ~/.cache/foresightkv/venv/bin/python experiments/bench_model.py
"""
import argparse
import json
import os
import pathlib
import subprocess
import tempfile
import time

import torch
from transformers import AutoModelForCausalLM

ROOT = pathlib.Path(__file__).resolve().parents[1]
BIN = pathlib.Path(os.environ.get("FORESIGHT_BIN", ROOT / "build" / "bin"))

SIZES = [  # name, init flags, tokens
    ("tiny", dict(layers=2, hidden=64, heads=4, kv_heads=2, intermediate=128, vocab=256), 512),
    ("small", dict(layers=4, hidden=256, heads=8, kv_heads=2, intermediate=704, vocab=4096), 1024),
    ("medium", dict(layers=8, hidden=512, heads=8, kv_heads=2, intermediate=1408, vocab=8192), 2048),
]


def hf_tokens_per_s(model_dir, tokens, impl, repeats):
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation=impl)
    ids = torch.randint(0, model.config.vocab_size, (1, tokens))
    best = float("inf")
    with torch.inference_mode():
        model(ids).logits.sum().item()
        for _ in range(repeats):
            start = time.perf_counter()
            model(ids).logits.sum().item()
            best = min(best, time.perf_counter() - start)
    return tokens / best


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="qwen3")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    threads = torch.get_num_threads()
    print(f"arch {args.arch}, fp32, CPU, {threads} threads, best of {args.repeats}\n")
    header = f"{'size':<8}{'params':>10}{'tokens':>8}{'ours tok/s':>12}{'HF eager':>11}{'HF sdpa':>10}{'vs eager':>10}{'vs sdpa':>9}"
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as tmp:
        for name, flags, tokens in SIZES:
            model_dir = pathlib.Path(tmp) / name
            init = [str(BIN / "foresight-model"), "init", "--arch", args.arch, "--out", model_dir,
                    "--max-positions", str(tokens)]
            for k, v in flags.items():
                init += ["--" + k.replace("_", "-"), str(v)]
            subprocess.run(init, check=True, capture_output=True)
            ours = json.loads(subprocess.run(
                [BIN / "foresight-model", "bench", "--model", model_dir, "--tokens", str(tokens),
                 "--repeats", str(args.repeats), "--threads", str(threads)],
                check=True, capture_output=True, text=True).stdout)["tokens_per_s"]
            eager = hf_tokens_per_s(model_dir, tokens, "eager", args.repeats)
            sdpa = hf_tokens_per_s(model_dir, tokens, "sdpa", args.repeats)
            params = os.path.getsize(model_dir / "model.safetensors") / 4 / 1e6
            print(f"{name:<8}{params:>9.1f}M{tokens:>8}{ours:>12.0f}{eager:>11.0f}{sdpa:>10.0f}"
                  f"{ours / eager:>9.2f}x{ours / sdpa:>8.2f}x", flush=True)


if __name__ == "__main__":
    main()
