#!/usr/bin/env python3
"""Golden recorder throughput and memory beside the full-matrix approach of the authors' Python
code, on the same inputs in the same run.

Work per row: one layer's block-aggregated attention (DESIGN.md §3) over random q/k/v of L tokens,
4 query heads sharing 2 KV heads, head_dim 64, W = 256, float32 on the CPU, --threads intra-op
threads. Each variant and length runs in its own `foresight-golden bench` process: --warmup
untimed runs, then --repeats timed ones, min and median seconds; the speed ratio is median over
median (and min over min beside it). Memory is the process's peak resident set minus its baseline
(libraries loaded and the q/k/v inputs made, before the first run), so it is the work's own; the
baseline is printed too.

    scripts/build.sh && ~/.cache/foresightkv/venv/bin/python experiments/bench_recorder.py [--threads N]
"""
import argparse
import json
import os
import pathlib
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[1]
BIN = pathlib.Path(os.environ.get("FORESIGHT_BIN", ROOT / "build" / "bin"))


def measure(variant, length, args):
    out = subprocess.run([BIN / "foresight-golden", "bench", "--variant", variant, "--length", str(length),
                          "--interval", str(args.interval), "--warmup", str(args.warmup),
                          "--repeats", str(args.repeats), "--threads", str(args.threads)],
                         check=True, capture_output=True, text=True)
    row = json.loads(out.stdout)
    assert row["threads"] == args.threads, row
    return row


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lengths", default="2048,4096,8192,16384")
    p.add_argument("--interval", type=int, default=256)
    p.add_argument("--threads", type=int, default=1,
                   help="intra-op threads of each process (1: steady on a shared machine; more on an idle one)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    print(f"{args.threads} thread(s); heads 4, KV heads 2, head_dim 64, W {args.interval}, float32, CPU; "
          f"{args.warmup} warm-up then {args.repeats} timed runs per cell; memory = peak RSS - baseline RSS\n")
    header = (f"{'L':>6}{'tiled tok/s best':>18}{'median':>9}{'full tok/s best':>17}{'median':>9}"
              f"{'speed (median)':>16}{'(best)':>8}{'tiled MB':>10}{'full MB':>9}{'memory ratio':>14}"
              f"{'baseline MB':>13}")
    print(header)
    print("-" * len(header))
    for length in map(int, args.lengths.split(",")):
        tiled = measure("tiled", length, args)
        full = measure("reference", length, args)
        assert abs(tiled["checksum"] - full["checksum"]) <= 1e-3 * abs(full["checksum"]), (tiled, full)
        tiled_mb = tiled["peak_rss_mb"] - tiled["baseline_rss_mb"]
        full_mb = full["peak_rss_mb"] - full["baseline_rss_mb"]
        print(f"{length:>6}{tiled['tokens_per_s_max']:>18.0f}{tiled['tokens_per_s_median']:>9.0f}"
              f"{full['tokens_per_s_max']:>17.0f}{full['tokens_per_s_median']:>9.0f}"
              f"{full['seconds_median'] / tiled['seconds_median']:>15.2f}x"
              f"{full['seconds_min'] / tiled['seconds_min']:>7.2f}x"
              f"{tiled_mb:>10.0f}{full_mb:>9.0f}{full_mb / tiled_mb:>13.1f}x"
              f"{max(tiled['baseline_rss_mb'], full['baseline_rss_mb']):>13.0f}", flush=True)


if __name__ == "__main__":
    main()
