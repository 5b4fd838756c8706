#!/usr/bin/env python3
"""The paper's headline checked on two generation-mode sweeps of foresight-eval: the learned scorer
at B/2 against the best heuristic at B, and SFT+GRPO against SFT.

    claim.py GRPO_SWEEP_DIR [SFT_SWEEP_DIR]
    claim.py --seeds DEMO_DIR DEMO_DIR ...     # scripts/demo.sh outputs of one pipeline under several seeds

GRPO_SWEEP_DIR holds the full cache, the heuristics and the SFT+GRPO scorer (`foresight`,
`foresight_sampled`), each possibly under protect variants (`NAME+prompt`, `NAME+N`); SFT_SWEEP_DIR,
when given, the SFT scorer's rows under the same names. Prints one table (accuracy ± standard
error, policies by budget; "skipped" where the budget cannot hold what a variant protects) and, for
every B whose half was also swept, whether the headline holds against the best heuristic at B: the
maximum over every heuristic under every protect value; then the same comparison at equal budget. It holds when the learned scorer is above
by more than the combined standard error, ties within it, and fails below it. Exits 0 either way: it
reports, it does not judge.

With --seeds, each DEMO_DIR holds accuracy/ (the SFT+GRPO sweep) and accuracy-sft/, from one seed of
the pipeline (trace sampling, SFT, GRPO) on the same held-out problems. A cell is then the mean over
seeds ± their standard deviation, beside the per-problem standard error (the mean of the seeds'). The
seeds share the problems, so averaging does not shrink the problem-sampling error: the mean's
standard error is sqrt(s.e.^2 + s.d.^2 / seeds), and that is what the verdicts use. Cells that differ
between seeds only by a seed are averaged alike; deterministic ones (the heuristics) come out with s.d. 0.
"""
import argparse
import json
import math
import pathlib

LEARNED = "foresight"  # foresight, foresight_sampled and their protect variants


def load(folder, suffix=""):
    rows = json.loads((pathlib.Path(folder) / "results.json").read_text())
    return {(r["policy"] + (suffix if r["policy"].startswith(LEARNED) else ""), r["B"]): r for r in rows}


def judge(mine, theirs, best, b):
    """`mine` against the best heuristic `best` at B `b`: above it by more than the combined standard
    error, within it, or below."""
    gap, se = mine["accuracy"] - theirs["accuracy"], math.hypot(mine["stderr"], theirs["stderr"])
    verdict = ("uninformative (both fail)" if mine["accuracy"] == theirs["accuracy"] == 0
               else f"holds (by {gap:.3f}, combined s.e. {se:.3f})" if gap > se
               else f"tie within the combined s.e. {se:.3f}" if gap >= -se
               else f"does not hold (short by {-gap:.3f}, combined s.e. {se:.3f})")
    return (f"{mine['accuracy']:.3f} ± {mine['stderr']:.3f} vs the best heuristic at B {b}, {best}, "
            f"{theirs['accuracy']:.3f} ± {theirs['stderr']:.3f}: {verdict}")


def cell(r):
    if "skipped" in r:
        return f"{'skipped':>16}"
    if "sd" in r:
        return f"{r['accuracy']:>9.3f} ± {r['sd']:.3f} s.d. (s.e. {r['problem_stderr']:.3f})"
    return f"{r['accuracy']:>9.3f} ± {r['stderr']:.3f}"


def over_seeds(runs):
    """One cell per key: the mean over the seeds' runs, their s.d., and the s.e. of the mean (the
    per-problem s.e., shared by the seeds, with the seeds' spread)."""
    out = {}
    for key, first in runs[0].items():
        rows = [r[key] for r in runs if key in r]
        if "skipped" in first or len(rows) != len(runs):
            out[key] = first
            continue
        acc = [r["accuracy"] for r in rows]
        mean = sum(acc) / len(acc)
        sd = math.sqrt(sum((x - mean) ** 2 for x in acc) / (len(acc) - 1)) if len(acc) > 1 else 0.0
        se = sum(r["stderr"] for r in rows) / len(rows)
        out[key] = first | {"accuracy": mean, "sd": sd, "problem_stderr": se,
                            "stderr": math.sqrt(se ** 2 + sd ** 2 / len(acc))}
    return out


def report(cells, with_sft):
    budgets = sorted({b for _, b in cells if b is not None})
    policies = list(dict.fromkeys(p for p, _ in cells))
    full = cells.get(("full", None))
    width = 38 if any("sd" in r for r in cells.values()) else 16
    print(f"{'policy':<26}" + "".join(f"{'B ' + str(b):>{width}}" for b in budgets))
    for policy in policies:
        if policy == "full":
            continue
        line = "".join(f"{cell(cells[policy, b]):>{width}}" if (policy, b) in cells else f"{'':>{width}}" for b in budgets)
        print(f"{policy:<26}{line}")
    if full:
        print(f"{'full cache':<26}{cell(full)} (every budget)")
    ran = {k: r for k, r in cells.items() if "skipped" not in r}
    heuristics = [p for p in policies if p != "full" and not p.startswith(LEARNED)]
    learned = [p for p in policies if p.startswith(LEARNED)]

    def best_heuristic(b):
        return max((p for p in heuristics if (p, b) in ran), key=lambda p: ran[p, b]["accuracy"], default=None)

    # The headline: the learned scorer at B/2 against the best heuristic at B.
    for b in budgets:
        best = best_heuristic(b)
        if b % 2 or b // 2 not in budgets or best is None:
            continue
        for mine in (p for p in learned if (p, b // 2) in ran):
            print(f"claim at B {b}: {mine} at B {b // 2} {judge(ran[mine, b // 2], ran[best, b], best, b)}")
    # And at equal budget, which a reviewer asks next.
    for b in budgets:
        best = best_heuristic(b)
        for mine in (p for p in learned if (p, b) in ran and best is not None):
            print(f"at equal budget B {b}: {mine} {judge(ran[mine, b], ran[best, b], best, b)}")
    if with_sft:
        for policy in (p for p in policies if p.startswith(LEARNED) and not p.endswith(" (SFT)")):
            pairs = [(ran[policy, b]["accuracy"], ran[policy + " (SFT)", b]["accuracy"]) for b in budgets
                     if (policy, b) in ran and (policy + " (SFT)", b) in ran]
            if pairs:
                wins = sum(g >= s for g, s in pairs)
                print(f"SFT+GRPO >= SFT for {policy} at {wins} of {len(pairs)} budgets "
                      f"(mean accuracy {sum(g for g, _ in pairs) / len(pairs):.3f} vs {sum(s for _, s in pairs) / len(pairs):.3f})")


def sweeps(grpo_sweep, sft_sweep=None):
    cells = load(grpo_sweep)
    if sft_sweep:
        cells |= {k: v for k, v in load(sft_sweep, " (SFT)").items() if k[0] != "full"}
    return cells


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("grpo_sweep", nargs="?")
    p.add_argument("sft_sweep", nargs="?")
    p.add_argument("--seeds", nargs="+", metavar="DEMO_DIR", help="scripts/demo.sh outputs, one per seed")
    a = p.parse_args()
    if bool(a.seeds) == bool(a.grpo_sweep):
        p.error("give GRPO_SWEEP_DIR [SFT_SWEEP_DIR], or --seeds DEMO_DIR ...")
    if a.seeds:
        runs = [sweeps(pathlib.Path(d) / "accuracy", pathlib.Path(d) / "accuracy-sft") for d in a.seeds]
        print(f"{len(runs)} seeds: mean ± s.d. over seeds (s.e.: per problem); verdicts use sqrt(s.e.^2 + s.d.^2/seeds)")
        report(over_seeds(runs), with_sft=True)
    else:
        report(sweeps(a.grpo_sweep, a.sft_sweep), with_sft=bool(a.sft_sweep))


if __name__ == "__main__":
    main()
