#!/usr/bin/env python3
"""GRPO rollout throughput and update time, with and without keeping the rollout features.

Work per row: `foresight-train grpo` steps of 2 traces x 2 generations (sampled budgeted rollouts
of the frozen model, rewards, one clipped-surrogate update), float32 on the CPU; means over steps
2-4 (step 1 includes warm-up). "kept" updates from the features each rollout stored; "replayed"
re-runs the model with the rollout's drops forced to rebuild them, which is the reference's way
(it re-runs the model in its update pass). "exact" (the default at num_iterations 1) takes the
gradients during the rollouts and only combines them in the update, so its step time is what
compares: rollout plus update seconds per step. The kept features cost layers x steps x Hkv x B x F
float32 per rollout, shown as MB. Models are random tiny qwen3 checkpoints; traces random tokens.

    scripts/build.sh && ~/.cache/foresightkv/venv/bin/python experiments/bench_grpo.py
"""
import json
import pathlib
import tempfile

from bench_setup import BIN, ROOT, make_golden, run

SIZES = [  # name, init flags, trace length, budget, interval
    ("tiny", dict(layers=2, hidden=64, heads=4, kv_heads=2, intermediate=128, vocab=256), 512, 64, 8),
    ("small", dict(layers=4, hidden=256, heads=8, kv_heads=2, intermediate=704, vocab=4096), 1024, 256, 64),
]


MODES = {"kept": ("exact_update=false", "keep_features=true"), "replayed": ("exact_update=false", "keep_features=false"),
         "exact": ()}


def grpo_rows(d, mode):
    out = d / f"grpo-{mode}"
    run(BIN / "foresight-train", "grpo", "--config", ROOT / "configs/grpo/tiny.yaml", f"model={d / 'model'}",
        f"golden={d / 'g.h5'}", f"init_scorer={d / 'sft' / 'final'}", f"output_dir={out}", "max_steps=4",
        "num_generations=2", "per_step_traces=2", "save_every=100", *MODES[mode])
    return [json.loads(line) for line in open(out / "metrics.jsonl")][1:]


def mean(rows, key):
    return sum(r[key] for r in rows) / len(rows)


def main():
    header = (f"{'size':<7}{'L':>6}{'B/W':>9}{'rollout tok/s':>15}{'update kept s':>15}{'update replayed s':>19}"
              f"{'replayed/kept':>15}{'kept MB/rollout':>17}{'step kept s':>13}{'step exact s':>14}")
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as tmp:
        for name, flags, length, budget, interval in SIZES:
            d = pathlib.Path(tmp) / name
            d.mkdir()
            make_golden(d, flags, length, budget, interval)
            run(BIN / "foresight-train", "sft", "--config", ROOT / "configs/sft/tiny.yaml", f"model={d / 'model'}",
                f"golden={d / 'g.h5'}", f"output_dir={d / 'sft'}", "max_steps=1", "heldout_fraction=0.01")
            kept, replayed, exact = grpo_rows(d, "kept"), grpo_rows(d, "replayed"), grpo_rows(d, "exact")
            head_dim = flags["hidden"] // flags["heads"]
            group = flags["heads"] // flags["kv_heads"]
            steps = (length - budget - 1) // interval
            features_mb = flags["layers"] * steps * flags["kv_heads"] * budget * (2 * head_dim + 8 * group) * 4 / 1e6
            k_s, r_s = mean(kept, "update_seconds"), mean(replayed, "update_seconds")
            print(f"{name:<7}{length:>6}{f'{budget}/{interval}':>9}{mean(kept, 'rollout_tokens_per_s'):>15.0f}"
                  f"{k_s:>15.3f}{r_s:>19.3f}{r_s / k_s:>14.1f}x{features_mb:>17.1f}"
                  f"{mean(kept, 'step_seconds'):>13.3f}{mean(exact, 'step_seconds'):>14.3f}", flush=True)


if __name__ == "__main__":
    main()
