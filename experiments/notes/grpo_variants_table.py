"""The held-out accuracy (64-127) of each GRPO variant of experiments/notes/grpo_variants.sh beside
the SFT scorer and the demo's GRPO it started from: per budget, mean ± s.d. over the 3 seeds (each
seed's value in parentheses), and at how many budgets the mean is at least SFT's. Greedy drops
(foresight) and sampled drops (foresight_sampled).

    python3 experiments/notes/grpo_variants_table.py build/seeds26 build/exp26b [64,128,256]
"""
import csv
import pathlib
import statistics
import sys

SEEDS = range(3)


def accuracy(path: pathlib.Path):
    """(policy, B) -> accuracy of an eval output dir's results.csv; None when it is missing."""
    if not path.exists():
        return None
    with open(path) as f:
        return {(r["policy"], r["B"]): float(r["accuracy"]) for r in csv.DictReader(f) if r["accuracy"]}


def main(seeds_dir: str, variants_dir: str, budgets: str = "64,128,256"):
    seeds, variants, budget_list = pathlib.Path(seeds_dir), pathlib.Path(variants_dir), budgets.split(",")
    rows = {"SFT": [seeds / f"seed{s}" / "accuracy-sft" / "results.csv" for s in SEEDS],
            "demo GRPO (lr 3e-4, 60 steps)": [seeds / f"seed{s}" / "accuracy" / "results.csv" for s in SEEDS]}
    for run in sorted(variants.glob("*-seed0")):
        name = run.name[:-len("-seed0")]
        for checkpoint in ("final", "step_180"):
            rows[f"{name} {checkpoint}"] = [variants / f"{name}-seed{s}" / f"acc-{checkpoint}" / "results.csv"
                                            for s in SEEDS]
    sft = [accuracy(p) for p in rows["SFT"]]
    for policy in ("foresight", "foresight_sampled"):
        print(f"\n{policy}: " + " | ".join(f"B {b}" for b in budget_list) + " | >= SFT")
        for label, paths in rows.items():
            tables = [accuracy(p) for p in paths]
            done = [i for i, t in enumerate(tables) if t]
            if not done:
                continue
            cells, at_least = [], 0
            for b in budget_list:
                values = [tables[i][(policy, b)] for i in done]
                mean = statistics.mean(values)
                at_least += mean >= statistics.mean(sft[i][(policy, b)] for i in done) - 1e-9
                spread = statistics.stdev(values) if len(values) > 1 else 0.0
                cells.append(f"{mean:.3f} ± {spread:.3f} ({', '.join(f'{v:.2f}' for v in values)})")
            print(f"  {label:32s} " + " | ".join(cells) + f" | {at_least}/{len(budget_list)}")


if __name__ == "__main__":
    main(*sys.argv[1:])
