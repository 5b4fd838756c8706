#!/usr/bin/env python3
"""Golden recorder throughput and peak memory beside the full-matrix approach of the authors'
Python code, on the same inputs in the same run.

Work per row: one layer's block-aggregated attention (DESIGN.md §3) over random q/k/v of L tokens,
4 query heads sharing 2 KV heads, head_dim 64, W = 256, float32 on the CPU. Each measurement runs
in its own `foresight-golden bench` process, so its peak resident memory is its own (it includes
~0.3 GB of loaded libraries).

    scripts/build.sh && ~/.cache/foresightkv/venv/bin/python experiments/bench_recorder.py
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
                          "--interval", str(args.interval)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lengths", default="2048,4096,8192,16384")
    p.add_argument("--interval", type=int, default=256)
    args = p.parse_args()
    header = (f"{'L':>6}{'tiled tok/s':>13}{'tiled peak MB':>15}{'full tok/s':>12}{'full peak MB':>14}"
              f"{'speed ratio':>13}{'memory ratio':>14}")
    print(header)
    print("-" * len(header))
    for length in map(int, args.lengths.split(",")):
        tiled = measure("tiled", length, args)
        full = measure("reference", length, args)
        assert abs(tiled["checksum"] - full["checksum"]) <= 1e-3 * abs(full["checksum"]), (tiled, full)
        print(f"{length:>6}{tiled['tokens_per_s']:>13.0f}{tiled['peak_rss_mb']:>15.0f}"
              f"{full['tokens_per_s']:>12.0f}{full['peak_rss_mb']:>14.0f}"
              f"{tiled['tokens_per_s'] / full['tokens_per_s']:>12.2f}x"
              f"{full['peak_rss_mb'] / tiled['peak_rss_mb']:>13.1f}x", flush=True)


if __name__ == "__main__":
    main()
