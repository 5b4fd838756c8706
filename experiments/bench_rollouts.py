#!/usr/bin/env python3
"""GRPO rollout tokens/s with a trace's G rollouts batched through the model, beside one by one.

Work per row: `foresight-train grpo` steps of 1 trace x G sampled budgeted rollouts of the frozen
model (the exact update's gradients taken during them, the default), float32 on the CPU, random
tiny qwen3 checkpoints and random-token traces. "batched" is rollout_batch 0 (the G rollouts in one
pass, the shared first B + W tokens run once); "one by one" is rollout_batch 1 (G passes at batch
1, the reference way). Only the rollouts are timed: the trainer's rollout_seconds of each step, so
tokens/s = G x L / rollout_seconds. Each timing is a trainer run of its own whose first step is
the warm-up and is left out; the two ways alternate, --repeats runs each, and the min and median
step time give the two rates. The trainer refuses a group of 1, so the G = 1 row is one rollout per
pass at num_generations 2 (rollout_batch 1): at batch 1 both ways are the same pass.

    scripts/build.sh && ~/.cache/foresightkv/venv/bin/python experiments/bench_rollouts.py --threads 1
"""
import argparse
import json
import os
import pathlib
import statistics
import tempfile

from bench_setup import BIN, ROOT, make_golden, run

SIZES = {  # init flags, trace length, budget, interval
    "small": (dict(layers=4, hidden=256, heads=8, kv_heads=2, intermediate=704, vocab=4096), 1024, 256, 64),
    "medium": (dict(layers=8, hidden=512, heads=8, kv_heads=2, intermediate=1408, vocab=4096), 1024, 256, 64),
}
GROUPS = (1, 4, 8)


def rollout_seconds(d, generations, batch, repeat):
    """Seconds of the rollouts of one step after a warm-up step, in a trainer run of its own."""
    out = d / f"grpo-g{generations}-b{batch}-r{repeat}"
    run(BIN / "foresight-train", "grpo", "--config", ROOT / "configs/grpo/tiny.yaml", f"model={d / 'model'}",
        f"golden={d / 'g.h5'}", f"init_scorer={d / 'sft' / 'final'}", f"output_dir={out}", "max_steps=2",
        f"num_generations={generations}", "per_step_traces=1", f"rollout_batch={batch}", "save_every=1000")
    return [json.loads(line)["rollout_seconds"] for line in open(out / "metrics.jsonl")][1]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=1, help="intra-op threads of the trainer (OMP_NUM_THREADS)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs of each way (one step after a warm-up step)")
    p.add_argument("--sizes", default="small,medium", help=f"comma-separated, of {', '.join(SIZES)}")
    args = p.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # inherited by every child process
    print(f"{args.threads} thread(s); float32 CPU; {args.repeats} alternating runs per way, each 1 warm-up step + 1 timed "
          f"step of 1 trace x G rollouts; tok/s = G x L / rollout seconds, of the fastest (min) and the median run")
    header = (f"{'size':<7}{'L':>6}{'B/W':>9}{'G':>4}{'one by one tok/s best|med':>26}{'batched tok/s best|med':>24}"
              f"{'batched/one (med)':>19}")
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sizes.split(","):
            flags, length, budget, interval = SIZES[name]
            d = pathlib.Path(tmp) / name
            d.mkdir()
            make_golden(d, flags, length, budget, interval, traces=2)
            run(BIN / "foresight-train", "sft", "--config", ROOT / "configs/sft/tiny.yaml", f"model={d / 'model'}",
                f"golden={d / 'g.h5'}", f"output_dir={d / 'sft'}", "max_steps=1", "heldout_fraction=0.01")
            for g in GROUPS:
                # The two ways alternate, so that a change in the machine's load falls on both. At G = 1
                # one pass of one rollout is both ways: timed once (num_generations 2, batch 1), per rollout.
                alone, batched = [], []
                for r in range(args.repeats):
                    alone.append(rollout_seconds(d, max(g, 2), 1, r) / (2 if g == 1 else 1))
                    if g > 1:
                        batched.append(rollout_seconds(d, g, 0, r))
                batched = batched or alone
                a_min, a_med = g * length / min(alone), g * length / statistics.median(alone)
                b_min, b_med = g * length / min(batched), g * length / statistics.median(batched)
                print(f"{name:<7}{length:>6}{f'{budget}/{interval}':>9}{g:>4}{f'{a_min:.0f} | {a_med:.0f}':>26}"
                      f"{f'{b_min:.0f} | {b_med:.0f}':>24}{b_med / a_med:>18.2f}x", flush=True)


if __name__ == "__main__":
    main()
