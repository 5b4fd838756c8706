#!/usr/bin/env python3
"""Decode throughput and peak memory of `foresight-model generate`, full cache and under a budget
(StreamingLLM, H2O), beside HF transformers `generate` (full DynamicCache) on the same checkpoint,
in one run.

Work per row: one random prompt of 16 tokens, then `new tokens` tokens sampled at temperature 1 for
each of `batch` sequences (ours: --num-samples; HF: num_return_sequences), no stop ids (HF:
min_new_tokens = max_new_tokens), fp32, CPU, --threads intra-op threads per process. Every run is
its own process: one untimed warm-up run per row (it loads the files into the page cache), then
--repeats timed ones; tok/s (best and median) is the decode time without the model load (ours: the
command's own timing line; HF: around `generate`, after a 4-token warm-up `generate` in the same
process). Memory is the work's own: the peak resident set (os.wait4) minus the baseline of the same
command with the libraries and the model loaded (ours: the same command generating 1 token; HF:
the resident peak just before `generate`). The budgeted cache holds at most B + W entries per layer
and KV head, so its memory stays flat as the generation grows; the full cache grows with it.

    scripts/build.sh && ~/.cache/foresightkv/venv/bin/python experiments/bench_decode.py [--quick] [--repeats N]
"""
import argparse
import json
import os
import statistics
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
BIN = pathlib.Path(os.environ.get("FORESIGHT_BIN", ROOT / "build" / "bin"))
MODEL = dict(layers=2, hidden=64, heads=4, kv_heads=2, intermediate=128, vocab=256)  # tiny: 16-dim heads
PROMPT = 16
ROWS = [("ours", None), ("ours", "streaming_llm"), ("ours", "h2o"), ("HF generate", None)]  # impl, policy

HF_CHILD = r"""
import json, resource, sys, time, torch
from transformers import AutoModelForCausalLM
model_dir, prompt, batch, new = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
ids = torch.tensor([prompt])
kw = dict(do_sample=True, temperature=1.0, top_k=0, top_p=1.0, num_return_sequences=batch, pad_token_id=0,
          eos_token_id=None)
with torch.inference_mode():
    model.generate(ids, max_new_tokens=4, min_new_tokens=4, **kw)  # warm-up
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    out = model.generate(ids, max_new_tokens=new, min_new_tokens=new, **kw)
    seconds = time.perf_counter() - start
generated = (out.shape[1] - ids.shape[1]) * out.shape[0]
print(json.dumps({"generated_tokens": generated, "seconds": seconds, "baseline_mib": baseline}))
"""


def measured(cmd):
    """Runs cmd; returns (stdout, stderr, peak RSS in MiB of that process alone)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([str(c) for c in cmd], stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(map(str, cmd))} failed:\n{stderr}")
    return stdout, stderr, usage.ru_maxrss / 1024  # Linux: KiB


def ours(model, prompts, out, batch, new, policy, budget, interval):
    """(generated tokens, seconds, peak RSS MiB, baseline RSS MiB of the same command generating 1 token)."""
    def cmd(tokens):
        c = [BIN / "foresight-model", "generate", "--model", model, "--prompts", prompts, "--out", out,
             "--max-new-tokens", tokens, "--num-samples", batch, "--temperature", 1, "--seed", 0, "--stop-ids", "none"]
        return c + (["--policy", policy, "--budget", budget, "--interval", interval] if policy else [])
    _, _, baseline = measured(cmd(1))
    os.unlink(out)
    _, stderr, rss = measured(cmd(new))
    stats = json.loads(stderr.strip().splitlines()[-1])
    os.unlink(out)
    assert stats["generated_tokens"] == batch * new, stats
    return stats["generated_tokens"], stats["seconds"], rss, baseline


def hf(model, prompt, batch, new):
    stdout, _, rss = measured([sys.executable, "-c", HF_CHILD, model, json.dumps(prompt), batch, new])
    stats = json.loads(stdout.strip().splitlines()[-1])
    assert stats["generated_tokens"] == batch * new, stats
    return stats["generated_tokens"], stats["seconds"], rss, stats["baseline_mib"]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="256 and 2048 new tokens instead of 2K and 16K")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per row, after one warm-up run")
    p.add_argument("--budget", type=int, default=256)
    p.add_argument("--interval", type=int, default=32)
    p.add_argument("--threads", type=int, default=1,
                   help="intra-op threads of every process, ours and HF alike (OMP_NUM_THREADS); a tiny model's "
                        "per-token ops are too small to split")
    args = p.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # inherited by every child process
    lengths = [256, 2048] if args.quick else [2048, 16384]
    B, W = args.budget, args.interval
    print(f"tiny qwen3 ({', '.join(f'{k} {v}' for k, v in MODEL.items())}), fp32, CPU, "
          f"{args.threads} thread(s) per process; prompt {PROMPT} tokens, temperature 1, no stop ids; "
          f"budgeted: B {B}, W {W}; 1 warm-up + {args.repeats} timed runs per row\n")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        model = tmp / "model"
        init = [BIN / "foresight-model", "init", "--arch", "qwen3", "--out", model,
                "--max-positions", PROMPT + max(lengths), "--seed", 0]
        for k, v in MODEL.items():
            init += ["--" + k.replace("_", "-"), v]
        subprocess.run([str(c) for c in init], check=True, capture_output=True)
        prompt = np.random.default_rng(0).integers(0, MODEL["vocab"], PROMPT).tolist()
        prompts = tmp / "prompts.jsonl"
        prompts.write_text(json.dumps({"id": "p", "input_ids": prompt}) + "\n")
        for new in lengths:
            for batch in (1, 8):
                for impl, policy in ROWS:
                    start = time.perf_counter()
                    runs = []
                    for _ in range(1 + args.repeats):  # the first is the warm-up
                        if impl == "ours":
                            runs.append(ours(model, prompts, tmp / "out.jsonl", batch, new, policy, B, W))
                        else:
                            runs.append(hf(model, prompt, batch, new))
                    results[impl, policy, batch, new] = runs[1:]
                    print(f"{impl} {policy or 'full'} batch {batch}, {new} new tokens: "
                          f"{time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)

    header = ("| impl | cache | batch | new tokens | work (tokens) | tok/s best | tok/s median | vs our full (median) "
              "| vs HF (median) | work's peak RSS MiB (median) | baseline MiB |")
    print(header)
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")

    def rates(runs):
        return [work / seconds for work, seconds, _, _ in runs]

    def work_mib(runs):  # peak minus baseline, per run
        return statistics.median(rss - base for _, _, rss, base in runs)

    for new in lengths:
        for batch in (1, 8):
            full = statistics.median(rates(results["ours", None, batch, new]))
            theirs = statistics.median(rates(results["HF generate", None, batch, new]))
            for impl, policy in ROWS:
                runs = results[impl, policy, batch, new]
                tps = rates(runs)
                med = statistics.median(tps)
                cache = f"{policy} B{B} W{W}" if policy else "full"
                print(f"| {impl} | {cache} | {batch} | {new} | {runs[0][0]} | {max(tps):.0f} | {med:.0f} "
                      f"| {med / full:.2f}x | {med / theirs:.2f}x | {work_mib(runs):.0f} "
                      f"| {statistics.median(base for _, _, _, base in runs):.0f} |")
    short, long = lengths
    print(f"\nwork's peak RSS from {short} to {long} new tokens: " + "; ".join(
        f"{impl} {policy or 'full'} batch {batch}: {work_mib(results[impl, policy, batch, short]):.0f} -> "
        f"{work_mib(results[impl, policy, batch, long]):.0f} MiB" for batch in (1, 8) for impl, policy in ROWS))


if __name__ == "__main__":
    main()
