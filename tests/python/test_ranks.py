"""Golden and SFT across torchrun ranks equal one process (GRPO's check is in test_grpo.py): the
golden file of two ranks holds the same traces with the same drops, also after the ranks were
killed and rerun; two SFT ranks take every step one process takes from the same state."""
import signal
import subprocess

import h5py
import numpy as np
import pytest

from conftest import (BIN, ROOT, free_port, init_model, make_golden, rank_environment, read_jsonl, run, torchrun,
                      write_traces)
from lockstep import GRADIENT_RTOL, compare_in_lockstep, read_weights

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
    # A progress line per trace (progress_every_s=0): the kill test waits for them.
    return ["run", "--config", GOLDEN, f"model={model}", f"traces={traces}", f"output={output}", "budget=32",
            "interval=8", "progress_every_s=0", *extra]


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


def test_a_refused_rank_leaves_no_empty_output_behind(golden_inputs, tmp_path):
    """Rank 1 refuses its stale shard (another schedule) after rank 0 created the output: the output,
    which holds no trace, goes, so that once the stale shard is removed the same command runs."""
    model, traces, _ = golden_inputs
    out = tmp_path / "golden.h5"
    run("foresight-golden", "run", "--config", GOLDEN, f"model={model}", f"traces={traces}",
        f"output={tmp_path / 'golden.h5.rank1-of-2'}", "budget=16", "interval=8")
    port = free_port()
    ranks = [subprocess.Popen([str(BIN / "foresight-golden"), *golden_args(model, traces, out, "dist_timeout_s=60")],
                              env=rank_environment(r, port), stderr=subprocess.PIPE, text=True) for r in (0, 1)]
    errors = [r.communicate(timeout=300)[1] for r in ranks]
    assert all(r.returncode != 0 for r in ranks), errors
    assert "schedule" in errors[1] or "another" in errors[1], errors[1]
    assert not out.exists(), errors[0]
    (tmp_path / "golden.h5.rank1-of-2").unlink()
    torchrun("foresight-golden", *golden_args(model, traces, out))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["golden.h5"]


# ---- SFT -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sft_data(tmp_path_factory):
    return make_golden(tmp_path_factory.mktemp("sft-ranks"), "model", seed=0, traces=10)


def sft_args(data, out, steps=3):
    model, golden = data
    # Batch 3 over 2 ranks: one rank replays two traces of each step, the other one. A constant
    # learning rate, so that a reference run told to stop at step k takes that step as this one does.
    return ["sft", "--config", SFT, f"model={model}", f"golden={golden}", f"output_dir={out}", f"max_steps={steps}",
            "batch_size=3", "lr=0.05", "lr_schedule=constant", "warmup_steps=0", "eval_every=1", "save_every=1",
            "keep_last_n=3", "heldout_fraction=0.2"]


def initial_scorer(data, tmp):
    """The seeded scorer SFT starts from: the weights after one step at learning rate 1e-30, which
    moves no weight by more than 1e-30."""
    model, golden = data
    run("foresight-train", "sft", "--config", SFT, f"model={model}", f"golden={golden}", f"output_dir={tmp}",
        "max_steps=1", "lr=1e-30")
    return read_weights(tmp / "final")


def held_out_rows(directory):
    return [r for r in read_jsonl(directory / "metrics.jsonl") if r.get("split") == "heldout"]


def test_two_sft_ranks_take_the_steps_one_process_takes(sft_data, tmp_path):
    """Every step of a 2-rank run against one process taking that step from the ranks' checkpoint
    (tests/python/lockstep.py): the same gradient, up to the order the ranks summed it in; the same
    loss, golden overlap and tokens; the weights Adam's step with that gradient."""
    proc = torchrun("foresight-train", *sft_args(sft_data, tmp_path / "two"))
    assert "on 2 rank(s)" in proc.stderr
    initial = initial_scorer(sft_data, tmp_path / "initial")
    steps = compare_in_lockstep(tmp_path / "two", 3, lambda out, k: run("foresight-train", *sft_args(sft_data, out, k)),
                                tmp_path, initial)
    held_out = held_out_rows(tmp_path / "two")
    for row, reference_row, reference, _ in steps:
        # Loss and overlap sum the traces' float64 values, identical at the same weights, in another
        # order: a few units of float64 rounding.
        assert row["loss"] == pytest.approx(reference_row["loss"], rel=1e-12)
        assert row["golden_overlap"] == pytest.approx(reference_row["golden_overlap"], rel=1e-12)
        assert row["grad_norm"] == pytest.approx(reference_row["grad_norm"], rel=GRADIENT_RTOL)
        assert row["tokens_per_s"] * row["step_seconds"] == pytest.approx(
            reference_row["tokens_per_s"] * reference_row["step_seconds"])
        # Held-out metrics come after the step, at weights one step's rounding apart (through Adam, up
        # to lr on an entry whose gradient is within rounding of zero; measured 2e-8 of the loss, the
        # same overlap). They are checked to be the whole held-out set's: a rank that left out its
        # share moved the loss by 49%.
        mine, theirs = held_out[row["step"] - 1], held_out_rows(reference)[-1]
        assert mine["step"] == theirs["step"] == row["step"]
        print(f"step {row['step']}: held-out loss {mine['loss'] / theirs['loss'] - 1:.1e} and golden overlap "
              f"{mine['golden_overlap'] / theirs['golden_overlap'] - 1:.1e} from the reference's, relatively")
        assert mine["loss"] == pytest.approx(theirs["loss"], rel=1e-3)
        assert mine["golden_overlap"] == pytest.approx(theirs["golden_overlap"], rel=1e-2)
    trained = read_weights(tmp_path / "two" / "final")
    assert max(float(np.abs(trained[k] - initial[k]).max()) for k in initial) > 1e-3  # the steps moved the weights
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["final", "metrics.jsonl", "run.json", "step_1",
                                                                   "step_2", "step_3"]
