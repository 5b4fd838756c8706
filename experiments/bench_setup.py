"""What the training benchmarks share: a random tiny qwen3 checkpoint, random-token traces and
their golden file, made with the project's own commands."""
import json
import os
import pathlib
import subprocess
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
BIN = pathlib.Path(os.environ.get("FORESIGHT_BIN", ROOT / "build" / "bin"))


def run(*args):
    subprocess.run([str(a) for a in args], check=True, capture_output=True)


def make_golden(d, flags, length, budget, interval, traces=4):
    """d/model (qwen3 with `flags`, e.g. layers=2 hidden=64 ... vocab=256), d/traces.jsonl and d/g.h5.
    Returns the golden stage's seconds per trace."""
    init = [BIN / "foresight-model", "init", "--arch", "qwen3", "--out", d / "model", "--max-positions", length,
            "--init-std", 0.2]
    for k, v in flags.items():
        init += ["--" + k.replace("_", "-"), v]
    run(*init)
    rng = np.random.default_rng(0)
    with open(d / "traces.jsonl", "w") as f:
        for i in range(traces):
            f.write(json.dumps({"id": f"t{i}", "input_ids": rng.integers(0, flags["vocab"], length).tolist()}) + "\n")
    start = time.perf_counter()
    run(BIN / "foresight-golden", "run", "--config", ROOT / "configs/golden/tiny.yaml", f"model={d / 'model'}",
        f"traces={d / 'traces.jsonl'}", f"output={d / 'g.h5'}", f"budget={budget}", f"interval={interval}",
        "query_tile=1024", "key_tile=1024")
    return (time.perf_counter() - start) / traces
