"""The commands' default intra-op thread count: OMP_NUM_THREADS when set, else LibTorch's default
(the machine's physical cores) capped by the CPUs the process may run on (common/threads.h)."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import BIN, init_model


def bench_threads(model, env, pin=None):
    cmd = [str(BIN / "foresight-model"), "bench", "--model", str(model), "--tokens", "8", "--repeats", "1"]
    if pin is not None:
        cmd = ["taskset", "-c", pin] + cmd
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out)["threads"]


@pytest.fixture
def model(tmp_path):
    return init_model(tmp_path / "m", "qwen3", layers=1, hidden=32, heads=4, kv_heads=2, intermediate=64, vocab=64,
                      max_positions=16)


def test_default_threads_follow_the_affinity_mask_and_omp_num_threads(model):
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    # LibTorch's own default, from the Python wheel in a fresh process without OMP_NUM_THREADS.
    libtorch = int(subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"], env=env,
                                  check=True, capture_output=True, text=True).stdout)
    assert bench_threads(model, env) == min(libtorch, len(os.sched_getaffinity(0)))
    assert bench_threads(model, {**env, "OMP_NUM_THREADS": "1"}) == 1  # honoured, below the default
    if shutil.which("taskset") is None:
        pytest.skip("no taskset to pin the command to one CPU")
    one_cpu = str(min(os.sched_getaffinity(0)))
    assert bench_threads(model, env, pin=one_cpu) == 1  # LibTorch alone would start `libtorch` threads here
