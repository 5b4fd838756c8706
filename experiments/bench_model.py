#!/usr/bin/env python3
"""Full-forward throughput of the LibTorch runtime beside HF transformers (eager and sdpa), on
random-weight checkpoints of three sizes made by `foresight-model init`, in one run.

Work per row: one causal forward (all layers + logits) over `tokens` random ids, fp32, CPU,
--threads intra-op threads for both; best and median of `--repeats` timed runs after one warm-up,
for both implementations; the ratios are median over median.

    scripts/build.sh && ~/.cache/foresightkv/venv/bin/python experiments/bench_model.py [--threads N]
"""
import argparse
import json
import os
import statistics
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
    """(best, median) tokens/s."""
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation=impl)
    ids = torch.randint(0, model.config.vocab_size, (1, tokens))
    secs = []
    with torch.inference_mode():
        model(ids).logits.sum().item()
        for _ in range(repeats):
            start = time.perf_counter()
            model(ids).logits.sum().item()
            secs.append(time.perf_counter() - start)
    return tokens / min(secs), tokens / statistics.median(secs)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="qwen3")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="intra-op threads of both implementations")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"arch {args.arch}, fp32, CPU, {args.threads} thread(s), one warm-up then {args.repeats} timed runs; "
          f"tok/s best / median\n")
    header = (f"{'size':<8}{'params':>10}{'tokens':>8}{'ours':>16}{'HF eager':>16}{'HF sdpa':>16}"
              f"{'vs eager':>10}{'vs sdpa':>9}")
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
            row = json.loads(subprocess.run(
                [BIN / "foresight-model", "bench", "--model", model_dir, "--tokens", str(tokens),
                 "--repeats", str(args.repeats), "--threads", str(args.threads)],
                check=True, capture_output=True, text=True).stdout)
            assert row["threads"] == args.threads, row
            ours = row["tokens_per_s"], row["tokens_per_s_median"]
            eager = hf_tokens_per_s(model_dir, tokens, "eager", args.repeats)
            sdpa = hf_tokens_per_s(model_dir, tokens, "sdpa", args.repeats)
            params = os.path.getsize(model_dir / "model.safetensors") / 4 / 1e6
            pair = lambda r: f"{r[0]:.0f} / {r[1]:.0f}"
            print(f"{name:<8}{params:>9.1f}M{tokens:>8}{pair(ours):>16}{pair(eager):>16}{pair(sdpa):>16}"
                  f"{ours[1] / eager[1]:>9.2f}x{ours[1] / sdpa[1]:>8.2f}x", flush=True)


if __name__ == "__main__":
    main()
