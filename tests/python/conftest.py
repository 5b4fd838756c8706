"""Shared helpers: the built commands, tiny checkpoints made by `foresight-model init`."""
import errno
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(os.environ.get("FORESIGHT_BIN", ROOT / "build" / "bin"))
GOLDEN = ROOT / "configs" / "golden" / "tiny.yaml"
BUDGET, INTERVAL = 64, 8  # the schedule the training tests record their golden files with


def run(command, *args, check=True):
    """Runs build/bin/<command> with string-converted args; returns the CompletedProcess."""
    proc = subprocess.run([str(BIN / command), *map(str, args)], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{command} {' '.join(map(str, args))} failed:\n{proc.stderr}")
    return proc


def free_port():
    """A TCP port nobody listens on now, for a torchrun rendezvous."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_environment(rank, port, world=2):
    """What torchrun would set for local rank `rank` of `world`, for a test that launches (and
    kills) the ranks itself."""
    return dict(os.environ, RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                MASTER_PORT=str(port))


def torchrun(command, *args):
    """build/bin/<command> on 2 local ranks under the venv's torchrun; returns the CompletedProcess."""
    launcher = pathlib.Path(sys.executable).parent / "torchrun"
    cmd = [str(launcher), "--no-python", "--nnodes=1", "--nproc-per-node=2", f"--master-port={free_port()}",
           str(BIN / command), *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
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


def make_golden(tmp, name, seed, traces=40, new_tokens=316, rope_theta=10000):
    """A tiny qwen3, `traces` sampled traces of 3 + new_tokens tokens, and their golden file (B 64, W 8)."""
    model = init_model(tmp / name, "qwen3", layers=2, hidden=64, heads=4, kv_heads=2, intermediate=128,
                       vocab=256, max_positions=1024, init_std=0.2, seed=seed, rope_theta=rope_theta)
    prompts = write_traces(tmp / f"{name}-prompts.jsonl",
                           [{"id": f"p{i}", "input_ids": [i, (7 * i + 3) % 256, 42]} for i in range(traces)])
    run("foresight-model", "generate", "--model", model, "--prompts", prompts, "--out", tmp / f"{name}.jsonl",
        "--max-new-tokens", new_tokens, "--seed", seed)
    golden = tmp / f"{name}.h5"
    run("foresight-golden", "run", "--config", GOLDEN, f"model={model}", f"traces={tmp / f'{name}.jsonl'}",
        f"output={golden}", f"budget={BUDGET}", f"interval={INTERVAL}")
    return model, golden


def expect_error(proc, text):
    assert proc.returncode != 0 and "error:" in proc.stderr and text in proc.stderr, proc.stderr


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module (`pytestmark = pytest.mark.usefixtures("one_thread")`): tiny
    models decode fastest on one, and on a busy 2-core machine two intra-op threads that wait on each
    other at every small op make a 300-token budgeted run 50x slower."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("OMP_NUM_THREADS", "1")
        yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_model(tmp_path):
    return init_model(tmp_path / "model", "qwen2", layers=2, hidden=32, heads=4, kv_heads=2,
                      intermediate=64, vocab=64, max_positions=48, init_std=0.2, seed=1)


@pytest.fixture
def full_disk(tmp_path):
    """A directory on a 1 MiB tmpfs whose space is used up: every write there fails with ENOSPC.
    Skips where mounting is not permitted (no root, no CAP_SYS_ADMIN)."""
    mount = tmp_path / "full"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill up: {proc.stderr.strip()}")
    try:
        with open(mount / "filler", "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 4096)
            except OSError as e:
                assert e.errno == errno.ENOSPC
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def blown_up_scorer(checkpoint, out):
    """A copy of a scorer checkpoint whose weights are finite but whose every score is inf, what an
    exploded update leaves: fc1 0 with bias 10 makes each hidden unit GELU(10) = 10, and fc2's
    weights and bias of 3e38 then overflow float32."""
    shutil.copytree(checkpoint, out)
    weights = load_file(str(out / "scorer.safetensors"))
    fill = {"fc1.weight": 0.0, "fc1.bias": 10.0, "fc2.weight": 3e38, "fc2.bias": 3e38}
    for name, t in weights.items():
        weights[name] = np.full_like(t, next(v for k, v in fill.items() if name.endswith(k)))
    save_file(weights, str(out / "scorer.safetensors"), metadata={"format": "pt"})
    return out
