#!/usr/bin/env python3
"""SFT step time and throughput at a small and a medium model size.

Work per row: `foresight-train sft` steps of 4 traces each (teacher-forced budgeted run of the
frozen model over every trace, features, scorer forward/backward at every eviction step, Adam),
float32 on the CPU, --threads intra-op threads (OMP_NUM_THREADS; default 1, the sensible choice
on a shared 2-core machine, where two spinning OpenMP threads per process can be many times
slower). Step 1 is the warm-up; the table gives the minimum and median seconds of steps 2..N and
their throughput as total tokens over total seconds (not a mean of per-step rates, which weighs a
fast step's rate as much as a slow one's). The golden file is recorded first from random tokens;
its time is reported too. There is no reference to run beside it here: the authors' SFT needs
their patched HF models on two GPUs.

    scripts/build.sh && ~/.cache/foresightkv/venv/bin/python experiments/bench_sft.py [--threads N] [--steps N]
"""
import argparse
import statistics
import json
import os
import pathlib
import tempfile

from bench_setup import BIN, ROOT, make_golden, run

SIZES = [  # name, init flags, trace length, budget, interval
    ("small", dict(layers=4, hidden=256, heads=8, kv_heads=2, intermediate=704, vocab=4096), 1024, 256, 64),
    ("medium", dict(layers=8, hidden=512, heads=8, kv_heads=2, intermediate=1408, vocab=8192), 2048, 512, 128),
]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1, help="intra-op threads (OMP_NUM_THREADS)")
    p.add_argument("--steps", type=int, default=6, help="SFT steps per size; the first is the warm-up")
    args = p.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # inherited by the commands
    print(f"{args.threads} thread(s); {args.steps - 1} timed steps of 4 traces after one warm-up step\n")
    header = (f"{'size':<8}{'params':>9}{'L':>6}{'B/W':>9}{'golden s/trace':>16}{'step s min':>12}"
              f"{'step s median':>15}{'SFT tok/s':>11}")
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as tmp:
        for name, flags, length, budget, interval in SIZES:
            d = pathlib.Path(tmp) / name
            d.mkdir()
            golden_s = make_golden(d, flags, length, budget, interval)
            run(BIN / "foresight-train", "sft", "--config", ROOT / "configs/sft/tiny.yaml", f"model={d / 'model'}",
                f"golden={d / 'g.h5'}", f"output_dir={d / 'sft'}", f"max_steps={args.steps}", "heldout_fraction=0.01",
                "save_every=100", "eval_every=100")
            rows = [json.loads(l) for l in open(d / "sft" / "metrics.jsonl") if "split" not in l][1:]
            seconds = [r["step_seconds"] for r in rows]
            tokens = sum(r["tokens_per_s"] * r["step_seconds"] for r in rows)  # each step's own token count
            params = os.path.getsize(d / "model" / "model.safetensors") / 4 / 1e6
            print(f"{name:<8}{params:>8.1f}M{length:>6}{f'{budget}/{interval}':>9}{golden_s:>16.2f}{min(seconds):>12.2f}"
                  f"{statistics.median(seconds):>15.2f}{tokens / sum(seconds):>11.0f}", flush=True)


if __name__ == "__main__":
    main()
