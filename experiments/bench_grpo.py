#!/usr/bin/env python3
"""GRPO rollout throughput and update time, with and without keeping the rollout features, each
cost separated so that like is compared with like.

Work per row: `foresight-train grpo` steps of 2 traces x 2 generations (sampled budgeted rollouts
of the frozen model, rewards, one clipped-surrogate update), float32 on the CPU, --threads intra-op
threads. Step 1 is the warm-up; the table gives the min and median over steps 2..N. The update runs
three ways:
- kept: the scorer's forward and backward over the features each rollout stored, batched over all
  eviction steps of a layer (no model pass);
- replayed: the reference's way, re-running the model with the rollout's drops forced to rebuild
  the features, the scorer's forward and backward step by step as the model reaches each step. The
  trainer times the scorer inside it (`update_scorer_seconds`), so the replayed update splits into
  its model pass (what keeping the features saves) and its step-by-step scorer work; the latter
  over the kept update's batched scorer work is a batching gain, not the saved model pass;
- exact (the default at num_iterations 1): gradients taken during the rollouts, combined in the
  update, so its whole step (rollout + update) compares with the kept one's.
"kept MB/rollout" is measured: the bytes of the feature tensors' storage the rollouts held
(`kept_feature_bytes_per_rollout`). Models are random tiny qwen3 checkpoints; traces random tokens.

    scripts/build.sh && ~/.cache/foresightkv/venv/bin/python experiments/bench_grpo.py [--threads N] [--steps N]
"""
import argparse
import json
import os
import pathlib
import statistics
import tempfile

from bench_setup import BIN, ROOT, make_golden, run

SIZES = [  # name, init flags, trace length, budget, interval
    ("tiny", dict(layers=2, hidden=64, heads=4, kv_heads=2, intermediate=128, vocab=256), 512, 64, 8),
    ("small", dict(layers=4, hidden=256, heads=8, kv_heads=2, intermediate=704, vocab=4096), 1024, 256, 64),
]

MODES = {"kept": ("exact_update=false", "keep_features=true"), "replayed": ("exact_update=false", "keep_features=false"),
         "exact": ()}


def grpo_rows(d, mode, steps):
    out = d / f"grpo-{mode}"
    run(BIN / "foresight-train", "grpo", "--config", ROOT / "configs/grpo/tiny.yaml", f"model={d / 'model'}",
        f"golden={d / 'g.h5'}", f"init_scorer={d / 'sft' / 'final'}", f"output_dir={out}", f"max_steps={steps}",
        "num_generations=2", "per_step_traces=2", "save_every=100", *MODES[mode])
    return [json.loads(line) for line in open(out / "metrics.jsonl")][1:]


def min_med(values):
    return min(values), statistics.median(values)


def cell(values, fmt=".3f"):
    lo, med = min_med(values)
    return f"{lo:{fmt}} / {med:{fmt}}"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1, help="intra-op threads (OMP_NUM_THREADS)")
    p.add_argument("--steps", type=int, default=6, help="GRPO steps per mode and size; the first is the warm-up")
    args = p.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # inherited by the commands
    print(f"{args.threads} thread(s); {args.steps - 1} timed steps of 2 traces x 2 rollouts after one warm-up step; "
          f"seconds per step, min / median\n")
    header = ("| size | L | B/W | rollout tok/s (min / median) | update kept s | update replayed s "
              "| replayed: model pass s | replayed: scorer step by step s | replayed/kept (all) "
              "| model pass/kept | step-by-step/batched scorer | kept MB/rollout | step kept s | step exact s "
              "| exact/kept step (median) |")
    print(header)
    print("|---|---:|---:|" + "---:|" * 12)
    with tempfile.TemporaryDirectory() as tmp:
        for name, flags, length, budget, interval in SIZES:
            d = pathlib.Path(tmp) / name
            d.mkdir()
            make_golden(d, flags, length, budget, interval)
            run(BIN / "foresight-train", "sft", "--config", ROOT / "configs/sft/tiny.yaml", f"model={d / 'model'}",
                f"golden={d / 'g.h5'}", f"output_dir={d / 'sft'}", "max_steps=1", "heldout_fraction=0.01")
            kept, replayed, exact = (grpo_rows(d, mode, args.steps) for mode in ("kept", "replayed", "exact"))
            kept_update = [r["update_seconds"] for r in kept]
            replayed_update = [r["update_seconds"] for r in replayed]
            replayed_scorer = [r["update_scorer_seconds"] for r in replayed]
            model_pass = [r["update_seconds"] - r["update_scorer_seconds"] for r in replayed]
            kept_scorer = [r["update_scorer_seconds"] for r in kept]
            kept_mb = [r["kept_feature_bytes_per_rollout"] / 1e6 for r in kept]
            assert all(r["kept_feature_bytes_per_rollout"] == 0 for r in replayed + exact)
            med = statistics.median
            print(f"| {name} | {length} | {budget}/{interval} "
                  f"| {cell([r['rollout_tokens_per_s'] for r in kept], '.0f')} | {cell(kept_update)} "
                  f"| {cell(replayed_update)} | {cell(model_pass)} | {cell(replayed_scorer)} "
                  f"| {med(replayed_update) / med(kept_update):.1f}x | {med(model_pass) / med(kept_update):.1f}x "
                  f"| {med(replayed_scorer) / med(kept_scorer):.1f}x | {cell(kept_mb, '.2f')} "
                  f"| {cell([r['step_seconds'] for r in kept])} | {cell([r['step_seconds'] for r in exact])} "
                  f"| {med([r['step_seconds'] for r in exact]) / med([r['step_seconds'] for r in kept]):.2f}x |",
                  flush=True)


if __name__ == "__main__":
    main()
