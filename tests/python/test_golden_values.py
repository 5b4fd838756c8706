"""A golden file whose values are out of range or inconsistent is refused, by `foresight-golden
inspect` and by the readers that use it (eval, SFT), with a message naming the file, the trace
and what is wrong. Each case corrupts one field of a good file with h5py."""
import shutil

import h5py
import numpy as np
import pytest

from conftest import ROOT, expect_error, init_model, run, write_traces

B, W, VOCAB = 16, 4, 64


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("values")
    model = init_model(tmp / "model", "qwen2", layers=2, hidden=32, heads=4, kv_heads=2, intermediate=64,
                       vocab=VOCAB, max_positions=128, init_std=0.3, seed=3)
    rng = np.random.default_rng(3)
    traces = write_traces(tmp / "traces.jsonl", [{"id": f"t{i}", "input_ids": rng.integers(0, VOCAB, 70).tolist()}
                                                 for i in range(2)])
    golden = tmp / "good.h5"
    run("foresight-golden", "run", "--config", ROOT / "configs" / "golden" / "tiny.yaml", f"model={model}",
        f"traces={traces}", f"output={golden}", f"budget={B}", f"interval={W}", "keep_attention=true")
    return model, golden


def set_value(name, index, value):
    def corrupt(trace):
        data = trace[name][:]
        data[index] = value
        trace[name][...] = data
    return corrupt


def repeat_slot(trace):
    slots = trace["drop_slots"][:]
    slots[0, 3, 0, 1] = slots[0, 3, 0, 0]
    trace["drop_slots"][...] = slots
    return int(slots[0, 3, 0, 0])


def shift_position(trace):
    positions = trace["drop_positions"][:]
    positions[1, 4, 0, 2] += 1
    trace["drop_positions"][...] = positions


def swap_for_a_kept_slot(trace):
    """A valid-looking step (distinct ascending slots in range) whose positions are those of
    other slots: slots [a, b, ...] become [a - 1, b, ...] when a - 1 is not dropped."""
    slots = trace["drop_slots"][:]
    step = next(s for s in range(slots.shape[1]) if slots[1, s, 1, 0] > 0)
    slots[1, step, 1, 0] -= 1
    trace["drop_slots"][...] = slots


CASES = {
    "slot-out-of-range": (set_value("drop_slots", (1, 2, 1, 3), B),
                          f"drop_slots[layer 1, step 2, kv head 1] holds slot {B}, expected 0..{B - 1}"),
    "slot-negative": (set_value("drop_slots", (0, 0, 0, 0), -1),
                      f"drop_slots[layer 0, step 0, kv head 0] holds slot -1, expected 0..{B - 1}"),
    "slot-twice": (repeat_slot, "drop_slots[layer 0, step 3, kv head 0] holds slot {} twice"),
    "position-off-by-one": (shift_position, "drop_positions[layer 1, step 4, kv head 0, drop 2] is"),
    "slot-of-another-position": (swap_for_a_kept_slot, "drop_positions[layer 1, step"),
    "token-negative": (set_value("tokens", 5, -1), "tokens[5] is -1, expected a token id"),
    "nll-nan": (set_value("nll", 7, np.nan), "nll[7] is nan, expected a finite number"),
    "entropy-inf": (set_value("entropy", 0, np.inf), "entropy[0] is inf, expected a finite number"),
    "score-nan": (set_value("oracle_scores", (1, 0, 1, 5), np.nan), "oracle_scores[1, 0, 1, 5] is nan"),
    "score-positive": (set_value("oracle_scores", (0, 1, 0, 0), 0.5),
                       "oracle_scores[0, 1, 0, 0] is 0.5, expected in [-1, 0]"),
    "score-below-minus-one": (set_value("oracle_scores", (0, 2, 1, 3), -2.0),
                              "oracle_scores[0, 2, 1, 3] is -2, expected in [-1, 0]"),
    "attention-nan": (set_value("attention", (0, 1, 10, 2), np.nan), "attention[0, 1, 10, 2] is nan"),
    "attention-above-one": (set_value("attention", (1, 0, 3, 0), 1.5),
                            "attention[1, 0, 3, 0] is 1.5, expected in [0, 1]"),
}


def corrupted(good_file, tmp_path, corrupt):
    bad = tmp_path / "bad.h5"
    shutil.copy(good_file, bad)
    with h5py.File(bad, "a") as f:
        detail = corrupt(f["traces"]["t0"])
    return bad, detail


def evaluate(model, golden, out):
    return run("foresight-eval", "--config", ROOT / "configs" / "eval" / "tiny.yaml", f"model={model}",
               f"golden={golden}", f"output_dir={out}", "policies=[streaming_llm]", f"budgets=[{B}]",
               f"interval={W}", "max_traces=0", check=False)


def test_the_good_file_passes(good):
    _, golden = good
    with h5py.File(golden) as f:  # what the range checks rely on holds for a recorded file
        for trace in f["traces"].values():
            assert (trace["oracle_scores"][:] <= 0).all() and (trace["oracle_scores"][:] >= -1).all()
            assert (trace["attention"][:] >= 0).all() and (trace["attention"][:] <= 1).all()
    assert "traces: 2" in run("foresight-golden", "inspect", golden).stdout


@pytest.mark.parametrize("case", list(CASES))
def test_inspect_and_eval_refuse_a_corrupted_field(good, tmp_path, case):
    model, golden = good
    corrupt, text = CASES[case]
    bad, detail = corrupted(golden, tmp_path, corrupt)
    text = text.format(detail)
    expect_error(run("foresight-golden", "inspect", bad, check=False), f"{bad}: trace t0: {text}")
    expect_error(evaluate(model, bad, tmp_path / "eval"), f"{bad}: trace t0: {text}")


def test_tokens_outside_the_models_vocabulary_are_refused_where_the_model_is_known(good, tmp_path):
    model, golden = good
    bad = tmp_path / "bad.h5"
    shutil.copy(golden, bad)
    with h5py.File(bad, "a") as f:
        for trace in f["traces"].values():
            tokens = trace["tokens"][:]
            tokens[9] = VOCAB
            trace["tokens"][...] = tokens
    run("foresight-golden", "inspect", bad)  # the file alone does not say the vocabulary size
    text = f"trace t0: tokens[9] is {VOCAB}, expected a token id of the model's vocabulary, 0..{VOCAB - 1}"
    expect_error(evaluate(model, bad, tmp_path / "eval"), text)
    sft = run("foresight-train", "sft", "--config", ROOT / "configs" / "sft" / "tiny.yaml", f"model={model}",
              f"golden={bad}", f"output_dir={tmp_path / 'sft'}", "max_steps=1", "batch_size=2",
              "heldout_fraction=0.1", check=False)
    expect_error(sft, "tokens[9] is 64, expected a token id of the model's vocabulary")
