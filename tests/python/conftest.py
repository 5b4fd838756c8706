"""Shared helpers: the built commands, tiny checkpoints made by `foresight-model init`."""
import json
import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(os.environ.get("FORESIGHT_BIN", ROOT / "build" / "bin"))


def run(command, *args, check=True):
    """Runs build/bin/<command> with string-converted args; returns the CompletedProcess."""
    proc = subprocess.run([str(BIN / command), *map(str, args)], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{command} {' '.join(map(str, args))} failed:\n{proc.stderr}")
    return proc


def init_model(out, arch, **flags):
    """`foresight-model init`; flags use underscores for dashes, True/False for booleans."""
    args = ["init", "--arch", arch, "--out", out]
    for key, value in flags.items():
        flag = "--" + key.replace("_", "-")
        args += [f"{flag}={str(value).lower()}"] if isinstance(value, bool) else [flag, value]
    run("foresight-model", *args)
    return out


def write_traces(path, traces):
    with open(path, "w") as f:
        for t in traces:
            f.write(json.dumps(t) + "\n")
    return path


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.fixture
def tiny_model(tmp_path):
    return init_model(tmp_path / "model", "qwen2", layers=2, hidden=32, heads=4, kv_heads=2,
                      intermediate=64, vocab=64, max_positions=48, init_std=0.2, seed=1)
