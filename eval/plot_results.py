#!/usr/bin/env python3
"""Plots a `foresight-eval` sweep: one PNG per metric, the metric against the budget B, one line
per policy (the learned ones drawn thicker). Reads OUTPUT_DIR/results.json, writes
OUTPUT_DIR/plots/<metric>.png.

    python eval/plot_results.py build/demo/eval
"""
import argparse
import json
import pathlib

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

METRICS = {
    "mean_nll_increase": "mean NLL increase (nats)",
    "spike_rate": "spike rate (NLL up > threshold)",
    "penalty": "GRPO penalty (-reward)",
    "golden_overlap": "golden overlap (teacher-forced)",
}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output_dir", type=pathlib.Path, help="a foresight-eval output_dir")
    args = parser.parse_args()
    rows = json.loads((args.output_dir / "results.json").read_text())
    plots = args.output_dir / "plots"
    plots.mkdir(exist_ok=True)
    policies = list(dict.fromkeys(r["policy"] for r in rows))
    for metric, label in METRICS.items():
        fig, ax = plt.subplots(figsize=(6, 4))
        for policy in policies:
            points = sorted((r["budget"], r[metric]) for r in rows if r["policy"] == policy and r[metric] is not None)
            if points:
                ax.plot(*zip(*points), marker="o", label=policy, linewidth=2.5 if policy.startswith("foresight") else 1.2)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("budget B (cache entries kept)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(plots / f"{metric}.png", dpi=120)
        plt.close(fig)
    print(f"plots: {', '.join(str(plots / f'{m}.png') for m in METRICS)}")


if __name__ == "__main__":
    main()
