"""The shipped testbed model (experiments/testbed/): its task, that the C++ runtime and transformers
load it alike, and that it solves held-out problems with the full cache as documented."""
import json
import os
import random
import subprocess
import sys

import pytest
import torch

import testbeds
from conftest import ROOT

TESTBED = ROOT / "experiments" / "testbed"
MODEL = TESTBED / "model"
sys.path.insert(0, str(TESTBED))
import task  # noqa: E402

PROBLEMS = 32              # the fixed held-out set of the accuracy check
DOCUMENTED_ACCURACY = 0.9  # experiments/testbed/README.md: at least this, greedy, full cache


def final_answer(continuation):
    return testbeds.final_answer(continuation, task.EOS, task.END_THINK)


def test_a_problem_reads_as_documented():
    keys, values, lines = task.heldout_problem(0)
    ids, start = task.full_sequence(random.Random(0), keys, values, lines)
    assert ids[:start] == task.prompt_ids(keys, values, lines)
    assert len(set(keys)) == len(set(values)) == task.FACTS and task.EVAL_LINES[0] <= lines <= task.EVAL_LINES[1]
    assert ids[start - 3:start] == [task.COUNT, task.number(lines), task.THINK]
    thinking = ids[start:start + 6 * lines]
    assert [thinking[6 * i] for i in range(lines)] == [task.number(n) for n in range(lines, 0, -1)]
    assert all(thinking[6 * i + 5] == task.LINE_END for i in range(lines))
    words = [t - task.FILLER0 for i, t in enumerate(thinking) if i % 6 not in (0, 5)]
    assert all(b in task.SUCCESSOR[a] for a, b in zip(words, words[1:]))
    assert ids[start + 6 * lines:] == [task.END_THINK] + [t for kv in zip(keys, values) for t in kv] + [task.EOS]
    assert len(ids) == 1 + 16 + 3 + 6 * lines + 1 + 16 + 1


def test_training_problems_never_repeat_a_heldout_one():
    heldout = {tuple(task.answer_ids(*task.heldout_problem(i)[:2])) for i in range(task.HELDOUT_POOL)}
    assert len(heldout) == task.HELDOUT_POOL
    assert all(tuple(task.answer_ids(*task.train_problem(i)[:2])) not in heldout for i in range(500))
    # The exclusion is not vacuous: it is checked against the same facts the evaluation uses.
    assert task.is_heldout(*task.heldout_problem(7)[:2])


def test_the_problem_files_are_what_foresight_eval_reads(tmp_path):
    keys, values, lines = task.heldout_problem(2)
    testbeds.assert_problem_files(TESTBED / "task.py", tmp_path, {
        "id": "heldout-2", "input_ids": task.prompt_ids(keys, values, lines),
        "answer_prefix_ids": [task.END_THINK], "answer_ids": task.answer_ids(keys, values)})


def test_the_runtime_scores_the_checkpoint_as_transformers_does(tmp_path):
    """Per-position NLL of two held-out answers (the generator's, not the model's)."""
    seqs = [task.full_sequence(random.Random(i), *task.heldout_problem(i))[0] for i in range(2)]
    testbeds.assert_runtime_scores_like_transformers(MODEL, seqs, tmp_path)


def test_the_full_cache_solves_heldout_problems_in_both_runtimes(tmp_path):
    ours, expected = testbeds.full_cache_answers(TESTBED / "task.py", MODEL, PROBLEMS, tmp_path)
    correct = sum(final_answer(r["input_ids"][r["prompt_len"]:]) == p["answer_ids"] for r, p in zip(ours, expected))
    assert correct / PROBLEMS >= DOCUMENTED_ACCURACY, f"{correct} of {PROBLEMS}"
    # transformers' greedy decoding of the same prompts (one batch: they have the same length).
    prompts = torch.tensor([p["input_ids"] for p in expected])
    with torch.no_grad():
        hf = testbeds.hf_model(MODEL).generate(prompts, max_new_tokens=360, do_sample=False, eos_token_id=task.EOS,
                                               pad_token_id=task.PAD)
    for r, row in zip(ours, hf.tolist()):
        new = row[prompts.shape[1]:]
        if task.EOS in new:
            new = new[:new.index(task.EOS) + 1]
        assert r["input_ids"][r["prompt_len"]:] == new, r["id"]


def test_training_is_deterministic(tmp_path):
    """The shipped model's command is the full-length run; FORESIGHT_SLOW=1 repeats it below."""
    testbeds.assert_training_deterministic(TESTBED / "train.py", tmp_path)


@pytest.mark.skipif(os.environ.get("FORESIGHT_SLOW") != "1", reason="retrains the testbed (~5 min); FORESIGHT_SLOW=1")
def test_training_from_scratch_reaches_the_documented_accuracy(tmp_path):
    subprocess.run([sys.executable, TESTBED / "train.py", "--out", tmp_path / "model"], check=True)
    log = [json.loads(line) for line in open(tmp_path / "model" / "train_log.jsonl")]
    assert log[-1]["heldout_accuracy"] >= DOCUMENTED_ACCURACY


def test_the_demo_configs_validate():
    testbeds.assert_demo_configs_validate("testbed", MODEL)
