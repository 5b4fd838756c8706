"""`foresight-golden run` on a full disk: the trace that does not fit is refused before the file is
touched, the traces written before stay readable, and once there is room the rerun resumes to the
file an uninterrupted run writes. A write that fails part way (a file size limit) is a clear error,
never a crash. Mounting a tmpfs needs root; without it these tests skip."""
import os
import resource
import signal
import subprocess

import h5py
import numpy as np
import pytest

from conftest import BIN, ROOT, init_model, run, write_traces

TINY = ROOT / "configs" / "golden" / "tiny.yaml"
TRACES = 12


def golden_cmd(model, traces, output):
    return [str(BIN / "foresight-golden"), "run", "--config", str(TINY), f"model={model}", f"traces={traces}",
            f"output={output}", "budget=64", "interval=16"]


def contents(path):
    with h5py.File(path, "r") as f:
        return {tid: {name: g[name][:] for name in g} for tid, g in f["traces"].items()}


def assert_same_traces(part, full):
    for tid, datasets in part.items():
        assert datasets.keys() == full[tid].keys()
        for name in datasets:
            np.testing.assert_array_equal(datasets[name], full[tid][name], err_msg=f"{tid}/{name}")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A model, 12 traces of 1500 tokens and the golden file of an uninterrupted run."""
    tmp = tmp_path_factory.mktemp("disk")
    model = init_model(tmp / "model", "qwen3", layers=2, hidden=64, heads=4, kv_heads=2, vocab=128,
                       max_positions=2048, init_std=0.3, seed=4)
    rng = np.random.default_rng(5)
    traces = write_traces(tmp / "t.jsonl", [{"id": f"t{i:02d}", "input_ids": rng.integers(0, 128, 1500).tolist()}
                                            for i in range(TRACES)])
    full = tmp / "full.h5"
    run("foresight-golden", *golden_cmd(model, traces, full)[1:])
    return model, traces, full


@pytest.fixture
def tmpfs(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()

    def mount(size):
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip()})")
    yield mnt, mount
    subprocess.run(["umount", str(mnt)], capture_output=True)


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def test_full_disk_keeps_the_written_traces_and_the_rerun_resumes(recorded, tmpfs):
    model, traces, full = recorded
    full_size = full.stat().st_size
    mnt, mount = tmpfs
    mount(full_size + (4 << 20))
    # Leave less room than the whole file needs: some traces fit, a later one does not.
    filler = mnt / "filler"
    with open(filler, "wb") as f:
        os.posix_fallocate(f.fileno(), 0, free_bytes(mnt) - (full_size - 4096))
    out = mnt / "golden.h5"

    failed = subprocess.run(golden_cmd(model, traces, out), capture_output=True, text=True)
    assert failed.returncode == 1, failed.stderr  # an error, not a crash
    assert "error: not enough disk space for trace" in failed.stderr and str(out) in failed.stderr
    assert "traces written so far and a rerun resumes" in failed.stderr
    assert sorted(p.name for p in mnt.iterdir()) == ["filler", "golden.h5"]  # no ballast or temporary left
    written = contents(out)  # h5py reads the traces written before, intact
    assert 1 <= len(written) < TRACES
    full_contents = contents(full)
    assert_same_traces(written, full_contents)
    assert f"the file holds the {len(written)} traces written so far" in failed.stderr

    filler.unlink()
    resumed = subprocess.run(golden_cmd(model, traces, out), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(written)} of {TRACES} traces already written" in resumed.stderr
    final = contents(out)
    assert final.keys() == full_contents.keys()
    assert_same_traces(final, full_contents)


def test_a_write_that_fails_part_way_is_an_error_not_a_crash(recorded, tmp_path):
    """A file size limit lets the space reservation pass (the ballast file is smaller than the
    limit) but stops the golden file itself from growing mid-write (EFBIG)."""
    model, traces, full = recorded
    limit = full.stat().st_size - 1

    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write then fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    out = tmp_path / "golden.h5"
    failed = subprocess.run(golden_cmd(model, traces, out), capture_output=True, text=True,
                            preexec_fn=limit_file_size)
    assert failed.returncode == 1, failed.stderr  # before: SIGSEGV in HDF5's exit handler
    assert "error: writing trace t" in failed.stderr and f"to {out} failed" in failed.stderr
    assert "File too large" in failed.stderr
