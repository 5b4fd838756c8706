#!/usr/bin/env python3
"""SFT step time and throughput at a small and a medium model size.

Work per row: `foresight-train sft` steps of 4 traces each (teacher-forced budgeted run of the
frozen model over every trace, features, scorer forward/backward at every eviction step, Adam),
float32 on the CPU; mean over steps 2-5 (step 1 includes warm-up). The golden file is recorded
first from random tokens; its time is reported too. There is no reference to run beside it here:
the authors' SFT needs their patched HF models on two GPUs.

    scripts/build.sh && ~/.cache/foresightkv/venv/bin/python experiments/bench_sft.py
"""
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
    header = f"{'size':<8}{'params':>9}{'L':>6}{'B/W':>9}{'golden s/trace':>16}{'SFT s/step':>12}{'SFT tok/s':>11}"
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as tmp:
        for name, flags, length, budget, interval in SIZES:
            d = pathlib.Path(tmp) / name
            d.mkdir()
            golden_s = make_golden(d, flags, length, budget, interval)
            run(BIN / "foresight-train", "sft", "--config", ROOT / "configs/sft/tiny.yaml", f"model={d / 'model'}",
                f"golden={d / 'g.h5'}", f"output_dir={d / 'sft'}", "max_steps=5", "heldout_fraction=0.01",
                "save_every=100", "eval_every=100")
            rows = [json.loads(l) for l in open(d / "sft" / "metrics.jsonl") if "split" not in l][1:]
            step_s = sum(r["step_seconds"] for r in rows) / len(rows)
            tok_s = sum(r["tokens_per_s"] for r in rows) / len(rows)
            params = os.path.getsize(d / "model" / "model.safetensors") / 4 / 1e6
            print(f"{name:<8}{params:>8.1f}M{length:>6}{f'{budget}/{interval}':>9}{golden_s:>16.2f}{step_s:>12.2f}{tok_s:>11.0f}",
                  flush=True)


if __name__ == "__main__":
    main()
