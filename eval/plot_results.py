#!/usr/bin/env python3
"""Plots a `foresight-eval` sweep: one PNG per metric, the metric against the budget B, one line
per policy (the learned ones drawn thicker, a protect variant NAME+prompt or NAME+N dashed in its
policy's colour; a skipped cell, whose budget cannot hold what it protects, left out). Reads OUTPUT_DIR/results.json, writes
OUTPUT_DIR/plots/<metric>.png. A generation-mode sweep gets plots/accuracy.png (with standard
error bars, the full cache as a horizontal line in its standard-error band) and plots/mean_length.png;
its rows name the budget `B` and the interval `W`, the teacher-forced sweep's `budget` and `interval`.

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
GENERATION_METRICS = {
    "accuracy": "accuracy (pass@1 over samples, ± s.e.)",  # its standard error is the column `stderr`
    "mean_length": "mean generated length (tokens)",
}


def budget(row):
    return row["B"] if "B" in row else row["budget"]


def error(row, metric):
    return row.get("stderr", 0) if metric == "accuracy" else row.get(f"{metric}_se", 0)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output_dir", type=pathlib.Path, help="a foresight-eval output_dir")
    args = parser.parse_args()
    rows = json.loads((args.output_dir / "results.json").read_text())
    plots = args.output_dir / "plots"
    plots.mkdir(exist_ok=True)
    # Generation mode's rows carry the task accuracy; its full-cache row has no budget.
    metrics = GENERATION_METRICS if "accuracy" in rows[0] else METRICS
    for metric, label in metrics.items():
        fig, ax = plt.subplots(figsize=(6, 4))
        policies = list(dict.fromkeys(r["policy"] for r in rows))
        bases = list(dict.fromkeys(p.split("+")[0] for p in policies))
        for policy in policies:
            # A skipped cell (its budget cannot hold what it protects) has no metrics.
            mine = [r for r in rows if r["policy"] == policy and r.get(metric) is not None]
            # A protect variant (NAME+prompt, NAME+N) keeps its policy's colour, dashed.
            base, variant = policy.split("+")[0], "+" in policy
            width = 2.5 if policy.startswith("foresight") else 1.2
            if mine and budget(mine[0]) is None:  # the full cache: the level to reach, ± s.e. as a band
                value, se = mine[0][metric], error(mine[0], metric)
                ax.axhline(value, color="black", linestyle="--", linewidth=width, label=f"{policy} cache")
                ax.axhspan(value - se, value + se, color="black", alpha=0.08)
                continue
            points = sorted((budget(r), r[metric], error(r, metric)) for r in mine)
            if points:
                budgets, values, errors = zip(*points)
                ax.errorbar(budgets, values, yerr=errors, marker="o", capsize=3, label=policy, linewidth=width,
                            color=f"C{bases.index(base) % 10}", linestyle="--" if variant else "-")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("budget B (cache entries kept)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(plots / f"{metric}.png", dpi=120)
        plt.close(fig)
    print(f"plots: {', '.join(str(plots / f'{m}.png') for m in metrics)}")


if __name__ == "__main__":
    main()
