"""Golden and SFT across torchrun ranks equal one process (GRPO's check is in test_grpo.py): the
golden file of two ranks holds the same traces with the same drops, also after the ranks were
killed and rerun; two SFT ranks train the weights one process trains."""
import signal
import subprocess

import h5py
import numpy as np
import pytest
from safetensors.numpy import load_file

from conftest import (BIN, ROOT, free_port, init_model, make_golden, rank_environment, read_jsonl, run, torchrun,
                      write_traces)

GOLDEN = ROOT / "configs" / "golden" / "tiny.yaml"
SFT = ROOT / "configs" / "sft" / "tiny.yaml"


@pytest.fixture(autouse=True)
def single_threaded(monkeypatch):
    # torchrun runs each rank single-threaded; so does the one process here, so that both reduce
    # in the same order inside each op and any difference is the ranks'.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


# ---- golden ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def golden_inputs(tmp_path_factory):
    """A tiny model and 7 traces of different lengths, one too short for an eviction step (B + W = 40)."""
    tmp = tmp_path_factory.mktemp("golden-ranks")
    model = init_model(tmp / "model", "qwen3", layers=2, hidden=64, heads=4, kv_heads=2, vocab=128,
                       max_positions=2048, init_std=0.3, seed=4)
    rng = np.random.default_rng(3)
    lengths = [300, 120, 30, 410, 95, 260, 180]
    traces = [{"id": f"t{i}", "input_ids": rng.integers(0, 128, n).tolist(), "prompt_len": 2 + i}
              for i, n in enumerate(lengths)]
    traces_path = write_traces(tmp / "traces.jsonl", traces)
    one = tmp / "one.h5"
    run("foresight-golden", *golden_args(model, traces_path, one))
    return model, traces_path, one


def golden_args(model, traces, output, *extra):
    return ["run", "--config", GOLDEN, f"model={model}", f"traces={traces}", f"output={output}", "budget=32",
            "interval=8", *extra]


def file_contents(path):
    with h5py.File(path, "r") as f:
        return {tid: ({name: g[name][:] for name in g}, dict(g.attrs)) for tid, g in f["traces"].items()}


def assert_same_traces(one, two):
    a, b = file_contents(one), file_contents(two)
    assert sorted(a) == sorted(b) == ["t0", "t1", "t3", "t4", "t5", "t6"]  # t2 is too short
    for tid in a:
        (da, attrs_a), (db, attrs_b) = a[tid], b[tid]
        assert da.keys() == db.keys() == {"tokens", "nll", "entropy", "drop_slots", "drop_positions", "oracle_scores"}
        assert attrs_a == attrs_b  # length, steps, prompt_len, complete
        for name in da:
            np.testing.assert_array_equal(da[name], db[name], err_msg=f"{tid}/{name}")


def test_two_golden_ranks_write_the_file_one_process_writes(golden_inputs, tmp_path):
    model, traces, one = golden_inputs
    two = tmp_path / "two.h5"
    proc = torchrun("foresight-golden", *golden_args(model, traces, two))
    assert "2 ranks recorded 6 traces; 6 moved from their shards" in proc.stderr
    assert_same_traces(one, two)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["two.h5"]  # the shards are gone
    inspect = run("foresight-golden", "inspect", two)
    assert "traces: 6, tokens 1365" in inspect.stdout


def launch_golden_rank(model, traces, output, rank, port):
    return subprocess.Popen([str(BIN / "foresight-golden"), *map(str, golden_args(model, traces, output))],
                            env=rank_environment(rank, port), stderr=subprocess.PIPE, text=True)


def test_killed_golden_ranks_resume_their_shards_to_the_same_file(golden_inputs, tmp_path):
    model, _, one = golden_inputs
    # Longer traces, so that the kill lands while the ranks record.
    rng = np.random.default_rng(3)
    traces = write_traces(tmp_path / "long.jsonl",
                          [{"id": f"t{i}", "input_ids": rng.integers(0, 128, 1500).tolist(), "prompt_len": 3}
                           for i in range(8)])
    single = tmp_path / "single" / "one.h5"
    single.parent.mkdir()
    run("foresight-golden", *golden_args(model, traces, single))
    out = tmp_path / "two" / "golden.h5"
    out.parent.mkdir()
    port = free_port()
    ranks = [launch_golden_rank(model, traces, out, r, port) for r in (0, 1)]
    written = 0
    for line in ranks[0].stderr:  # rank 0 notes each trace it appended to its shard
        written += " trace t" in line
        if written == 2:
            break
    for r in ranks:
        r.send_signal(signal.SIGKILL)
        r.wait()
    shards = {r: file_contents(f"{out}.rank{r}-of-2") for r in (0, 1)}
    assert len(shards[0]) >= 2 and sum(map(len, shards.values())) < 8
    resumed = torchrun("foresight-golden", *golden_args(model, traces, out))
    assert f"(rank 0 of 2): {len(shards[0])} of 8 traces already written" in resumed.stderr
    a, b = file_contents(single), file_contents(out)
    assert sorted(a) == sorted(b) == [f"t{i}" for i in range(8)]
    for tid in a:
        for name in a[tid][0]:
            np.testing.assert_array_equal(a[tid][0][name], b[tid][0][name], err_msg=f"{tid}/{name}")
    assert sorted(p.name for p in out.parent.iterdir()) == ["golden.h5"]


def test_shards_of_another_rank_count_are_refused(golden_inputs, tmp_path):
    model, traces, _ = golden_inputs
    out = tmp_path / "golden.h5"
    (tmp_path / "golden.h5.rank1-of-4").write_bytes(b"")
    proc = run("foresight-golden", *golden_args(model, traces, out), check=False)
    assert proc.returncode != 0 and "unfinished run over 4 ranks" in proc.stderr, proc.stderr
    assert not out.exists()


# ---- SFT -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sft_data(tmp_path_factory):
    return make_golden(tmp_path_factory.mktemp("sft-ranks"), "model", seed=0, traces=10)


def sft_args(data, out):
    model, golden = data
    # Batch 3 over 2 ranks: one rank replays two traces of each step, the other one.
    return ["sft", "--config", SFT, f"model={model}", f"golden={golden}", f"output_dir={out}", "max_steps=3",
            "batch_size=3", "lr=0.05", "warmup_steps=0", "eval_every=1", "save_every=1", "keep_last_n=3",
            "heldout_fraction=0.2"]


def weights(directory):
    """fc2.bias shifts every score of a KV head alike, which the pairwise ranking loss does not see:
    its gradient is zero up to rounding, which Adam turns into steps of about the learning rate."""
    return {k: v for k, v in load_file(str(directory / "scorer.safetensors")).items() if not k.endswith("fc2.bias")}


def test_two_sft_ranks_train_the_weights_one_process_trains(sft_data, tmp_path):
    run("foresight-train", *sft_args(sft_data, tmp_path / "one"))
    proc = torchrun("foresight-train", *sft_args(sft_data, tmp_path / "two"))
    assert "on 2 rank(s)" in proc.stderr
    one, two = weights(tmp_path / "one" / "final"), weights(tmp_path / "two" / "final")
    worst = max(float(np.abs(one[k] - two[k]).max()) for k in one)
    print(f"largest weight difference, 2 SFT ranks vs 1 process after 3 steps: {worst:.2e}")
    assert worst < 1e-6
    moved = max(float(np.abs(one[k] - weights(tmp_path / "one" / "step_1")[k]).max()) for k in one)
    assert moved > 1e-3  # and the steps after the first moved the weights
    # The metrics (loss, overlap, tokens; held-out loss and overlap) are the whole batch's.
    rows_one, rows_two = read_jsonl(tmp_path / "one" / "metrics.jsonl"), read_jsonl(tmp_path / "two" / "metrics.jsonl")
    assert len(rows_one) == len(rows_two) == 6
    for a, b in zip(rows_one, rows_two):
        assert a.get("split") == b.get("split") and a["step"] == b["step"]
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-6)
        assert b["golden_overlap"] == pytest.approx(a["golden_overlap"], rel=1e-6)
        if "tokens_per_s" in a:
            assert a["tokens_per_s"] * a["step_seconds"] == pytest.approx(b["tokens_per_s"] * b["step_seconds"])
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())
