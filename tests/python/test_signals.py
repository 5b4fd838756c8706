"""SIGINT and SIGTERM end a command as before (killed by the signal) but leave no `*.tmp-PID`
temporaries behind, and keep the outputs written before: an earlier output file, and a golden
file that is readable and resumes."""
import signal
import subprocess
import time

import h5py
import numpy as np
import pytest

from conftest import BIN, ROOT, init_model, run, write_traces


def default_signals():
    """In the child: SIGINT as a terminal would deliver it. A shell that starts the suite in the
    background (`cmd &`) sets SIGINT to ignored, and children inherit that, so a SIGINT would go
    unnoticed and the command finish normally."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for(predicate, proc, timeout=60):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, "the command ended before it could be signalled"
        assert time.monotonic() < deadline
        time.sleep(0.01)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_score_stopped_by_a_signal_leaves_no_temporary(tiny_model, tmp_path, sig):
    traces = write_traces(tmp_path / "t.jsonl", [{"id": f"t{i}", "input_ids": [i % 64] * 40} for i in range(4000)])
    earlier = tmp_path / "earlier.jsonl"
    run("foresight-model", "score", "--model", tiny_model, "--traces",
        write_traces(tmp_path / "two.jsonl", [{"id": "a", "input_ids": [1] * 40}]), "--out", earlier)
    before = earlier.read_bytes()

    out = tmp_path / "scores.jsonl"
    proc = subprocess.Popen([str(BIN / "foresight-model"), "score", "--model", str(tiny_model), "--traces",
                             str(traces), "--out", str(out)], stderr=subprocess.DEVNULL, preexec_fn=default_signals)
    wait_for(lambda: any(tmp_path.glob("scores.jsonl.tmp-*")), proc)
    time.sleep(0.2)
    assert proc.poll() is None, "score finished before the signal: give it more traces"
    proc.send_signal(sig)
    assert proc.wait() == -sig  # ended by the signal, as without the cleanup
    assert sorted(p.name for p in tmp_path.iterdir()) == ["earlier.jsonl", "model", "t.jsonl", "two.jsonl"]
    assert earlier.read_bytes() == before


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_golden_run_stopped_by_a_signal_is_readable_and_resumes(tmp_path, sig):
    model = init_model(tmp_path / "model", "qwen3", layers=2, hidden=64, heads=4, kv_heads=2, vocab=128,
                       max_positions=1024, init_std=0.3, seed=6)
    rng = np.random.default_rng(7)
    traces = write_traces(tmp_path / "t.jsonl", [{"id": f"t{i}", "input_ids": rng.integers(0, 128, 900).tolist()}
                                                 for i in range(8)])
    cmd = [str(BIN / "foresight-golden"), "run", "--config", str(ROOT / "configs" / "golden" / "tiny.yaml"),
           f"model={model}", f"traces={traces}", "budget=64", "interval=16"]
    full = tmp_path / "full.h5"
    subprocess.run(cmd + [f"output={full}"], check=True, capture_output=True)

    out = tmp_path / "stopped.h5"
    proc = subprocess.Popen(cmd + [f"output={out}"], stderr=subprocess.PIPE, text=True, preexec_fn=default_signals)
    for line in proc.stderr:
        if " trace t" in line:  # the first trace is written: stop during the next ones
            proc.send_signal(sig)
            break
    assert proc.wait() == -sig
    assert not list(tmp_path.glob("*.tmp-*")) and not list(tmp_path.glob("*.reserve-*"))
    with h5py.File(out, "r") as f:
        written = sorted(f["traces"])
    assert 1 <= len(written) < 8

    resumed = subprocess.run(cmd + [f"output={out}"], check=True, capture_output=True, text=True)
    assert f"{len(written)} of 8 traces already written" in resumed.stderr
    with h5py.File(full, "r") as a, h5py.File(out, "r") as b:
        assert sorted(a["traces"]) == sorted(b["traces"])
        for tid in a["traces"]:
            for name in a["traces"][tid]:
                np.testing.assert_array_equal(a["traces"][tid][name][:], b["traces"][tid][name][:])
