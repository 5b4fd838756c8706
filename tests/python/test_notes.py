"""The notes testbed (experiments/notes/): the task generator's invariants, written out by hand from
the format its docstring documents; that training never sees a held-out problem; that the C++
runtime and transformers load the shipped checkpoint alike and that it solves held-out problems
with the full cache as documented; and the hand rule's choice of what to keep."""
import importlib.util
import json
import random
import subprocess
import sys

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from conftest import ROOT, read_jsonl, run, write_traces

NOTES = ROOT / "experiments" / "notes"
MODEL = NOTES / "model"
PROBLEMS = 32               # the fixed held-out set of the accuracy check
DOCUMENTED_ACCURACY = 0.95  # experiments/notes/README.md: at least this, greedy, full cache


def load(name, path):
    """A module by file, under its own name: the first testbed's task.py is `task` too."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


task = load("notes_task", NOTES / "task.py")


def with_task_as(module_name, path):
    """Load a notes script that does `import task`, with `task` the notes task while it loads."""
    saved = sys.modules.get("task")
    sys.modules["task"] = task
    try:
        return load(module_name, path)
    finally:
        if saved is None:
            del sys.modules["task"]
        else:
            sys.modules["task"] = saved


def hf_model():
    return AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.float32, attn_implementation="eager").eval()


def final_answer(continuation):
    if task.EOS in continuation:
        continuation = continuation[:continuation.index(task.EOS)]
    ends = [i for i, t in enumerate(continuation) if t == task.END_THINK]
    return continuation[ends[-1] + 1:] if ends else None


def kind(t):
    """A token's vocabulary, from the layout the task documents (model/vocab.json's names)."""
    name = task.token_name(t)
    for prefix in ("NOTE", "ASK", "w", "r", "v", "k", ";"):
        if name.startswith(prefix):
            return prefix
    return "number" if name.isdigit() else name


def test_a_problem_reads_as_documented():
    for index in range(40):
        problem = task.heldout_problem(index)
        ids, start = task.full_sequence(random.Random(index), problem)
        prompt = ids[:start]
        assert prompt[0] == task.BOS and prompt[-3] == task.COUNT and prompt[-1] == task.THINK
        s = int(task.token_name(prompt[-2]))
        assert task.EVAL_LINES[0] <= s <= task.EVAL_LINES[1]
        # The facts: `k v` or `n ASKa v`, parsed left to right.
        facts, i, asked = [], 1, {}
        while i < start - 3:
            if kind(prompt[i]) == "k":
                assert kind(prompt[i + 1]) == "v"
                facts.append(prompt[i + 1])
                i += 2
            else:
                n, label, value = prompt[i:i + 3]
                assert (kind(n), kind(label), kind(value)) == ("number", "ASK", "v")
                asked[int(task.token_name(n))] = (label, value)
                facts.append(value)
                i += 3
        assert task.EVAL_FACTS[0] <= len(facts) <= task.EVAL_FACTS[1] and len(set(facts)) == len(facts)
        assert len(asked) == 4 and len({label for label, _ in asked.values()}) == 4
        assert all(task.MIN_DUE <= n <= s - 1 for n in asked)
        assert len(prompt) > 64  # longer than the claim's heuristic budget B
        # The thinking: S lines counting down, 6 tokens each, notes at the due lines.
        thinking = ids[start:start + 6 * s]
        written, answer = 0, []
        for line in range(s):
            n, *body, end = thinking[6 * line:6 * line + 6]
            assert task.token_name(n) == str(s - line)
            if s - line in asked:
                label, value = asked[s - line]
                assert body[:2] == [label, value] and task.token_name(body[2]) == f"NOTE{written + 1}"
                assert kind(body[3]) == "r" and body[3] - task.RESULT0 == task.DERIVE[value - task.VALUE0]
                answer += body[2:]
                written += 1
            else:
                assert all(kind(t) == "w" for t in body)
            assert task.token_name(end) == f";{written}"
        assert written == 4
        assert ids[start + 6 * s:] == [task.END_THINK] + answer + [task.EOS]
        assert answer[1::2] != [v for _, v in sorted(asked.items(), reverse=True)]  # results, not the values
    # Labels are not in due order, so the prompt does not say which fact becomes which note.
    assert sum(labels_in_due_order(task.heldout_problem(i)) for i in range(240)) < 40  # 1 in 24 at random


def labels_in_due_order(problem):
    asked = sorted((f[0], f[1]) for f in problem.facts if len(f) == 3)   # by due line, ascending
    labels = [label for _, label in reversed(asked)]                       # the first written first
    return labels == sorted(labels)


def test_filler_follows_the_successor_chain_and_the_labels_are_a_bijection():
    problem = task.heldout_problem(3)
    ids, start = task.full_sequence(random.Random(5), problem)
    words = [t - task.FILLER0 for t in ids[start:] if kind(t) == "w"]
    assert all(b in task.SUCCESSOR[a] for a, b in zip(words, words[1:]))
    assert sorted(task.DERIVE) == list(range(task.RESULTS))


def test_training_problems_never_repeat_a_heldout_one():
    heldout = {tuple(task.prompt_ids(task.heldout_problem(i))) for i in range(task.HELDOUT_POOL)}
    assert len(heldout) == task.HELDOUT_POOL
    assert all(tuple(task.prompt_ids(task.train_problem(i))) not in heldout for i in range(300))
    assert task.is_heldout(task.heldout_problem(7))


def test_training_batches_skip_a_heldout_problem(monkeypatch):
    """The training script's batches: a held-out problem drawn by the stream is skipped, not trained on."""
    train = with_task_as("notes_train", NOTES / "train.py")
    planted = task.heldout_problem(11)
    assert task.is_heldout(planted)  # and the held-out set is built now, before make_problem is replaced
    fresh = [task.train_problem(i) for i in range(8)]
    draws = iter([planted] + fresh)
    monkeypatch.setattr(task, "make_problem", lambda *a, **k: next(draws))
    ids, weight, answer = train.training_batch(1, ((6, 8), (5, 8)), 4, 0, 0, 0.2)
    for b, problem in enumerate(fresh[:4]):   # the planted problem skipped, the next four in its place
        prompt = torch.tensor(task.prompt_ids(problem))
        assert torch.equal(ids[b, :len(prompt)], prompt)


def test_the_problem_files_are_what_foresight_eval_reads(tmp_path):
    out = tmp_path / "problems.jsonl"
    subprocess.run([sys.executable, NOTES / "task.py", "problems", "--split", "heldout", "--count", "3",
                    "--out", out], check=True)
    rows = read_jsonl(out)
    again = subprocess.run([sys.executable, NOTES / "task.py", "prompts", "--count", "1", "--out", out],
                           capture_output=True, text=True)
    assert again.returncode != 0 and "exists" in again.stderr and read_jsonl(out) == rows
    problem = task.heldout_problem(2)
    assert rows[2] == {"id": "heldout-2", "input_ids": task.prompt_ids(problem),
                       "answer_prefix_ids": [task.END_THINK], "answer_ids": task.answer_ids(problem)}


def test_the_runtime_scores_the_checkpoint_as_transformers_does(tmp_path):
    seqs = [task.full_sequence(random.Random(i), task.heldout_problem(i))[0] for i in range(2)]
    traces = write_traces(tmp_path / "t.jsonl", [{"id": f"h{i}", "input_ids": s} for i, s in enumerate(seqs)])
    run("foresight-model", "score", "--model", MODEL, "--traces", traces, "--out", tmp_path / "s.jsonl")
    model = hf_model()
    for i, row in enumerate(read_jsonl(tmp_path / "s.jsonl")):
        with torch.no_grad():
            logits = model(torch.tensor([seqs[i]])).logits[0, :-1]
        nll = torch.nn.functional.cross_entropy(logits, torch.tensor(seqs[i][1:]), reduction="none")
        assert (torch.tensor(row["nll"]) - nll).abs().max().item() < 1e-4


def test_the_full_cache_solves_heldout_problems_in_both_runtimes(tmp_path):
    problems = tmp_path / "problems.jsonl"
    subprocess.run([sys.executable, NOTES / "task.py", "problems", "--split", "heldout", "--count", str(PROBLEMS),
                    "--out", problems], check=True)
    out = tmp_path / "answers.jsonl"
    run("foresight-model", "generate", "--model", MODEL, "--prompts", problems, "--out", out,
        "--max-new-tokens", 360, "--temperature", 0, "--threads", 1)
    ours, expected = read_jsonl(out), read_jsonl(problems)
    correct = sum(final_answer(r["input_ids"][r["prompt_len"]:]) == p["answer_ids"] for r, p in zip(ours, expected))
    assert correct / PROBLEMS >= DOCUMENTED_ACCURACY, f"{correct} of {PROBLEMS}"
    model = hf_model()
    for r, p in list(zip(ours, expected))[:8]:  # transformers decodes the same tokens (prompts differ in length)
        with torch.no_grad():
            hf = model.generate(torch.tensor([p["input_ids"]]), max_new_tokens=360, do_sample=False,
                                eos_token_id=task.EOS, pad_token_id=task.PAD)[0, len(p["input_ids"]):].tolist()
        assert r["input_ids"][r["prompt_len"]:] == hf, r["id"]


def test_training_is_deterministic(tmp_path):
    weights = []
    for name in ("a", "b"):
        subprocess.run([sys.executable, NOTES / "train.py", "--out", tmp_path / name, "--steps", "12",
                        "--eval-every", "1000", "--eval-problems", "2", "--threads", "1"], check=True, capture_output=True)
        weights.append(load_file(tmp_path / name / "model.safetensors"))
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert json.loads((tmp_path / "a" / "vocab.json").read_text())["vocab_size"] == task.VOCAB_SIZE
    refused = subprocess.run([sys.executable, NOTES / "train.py", "--out", tmp_path / "a", "--steps", "1"],
                             capture_output=True, text=True)
    assert refused.returncode != 0 and "exists" in refused.stderr


def test_the_hand_rule_keeps_pending_asked_facts_and_written_notes():
    """On a hand-written sequence: <bos> and `# S <think>` (kept), an asked fact already looked up
    (dropped), one still pending (kept), a plain fact and filler (dropped), and the written note's
    line `n ASKa v NOTE1 r` (kept, its line end not)."""
    rule = with_task_as("notes_hand_rule", NOTES / "hand_rule.py")
    n, a0, a1, v = task.number, task.ASK0, task.ASK0 + 1, task.VALUE0
    prompt = [task.BOS, n(20), a0, v + 3, n(30), a1, v + 4, task.KEY0, v + 5, task.COUNT, n(40), task.THINK]
    thinking = [n(40), task.FILLER0, task.FILLER0 + 1, task.FILLER0 + 2, task.FILLER0 + 3, task.END0,
                n(39), a0, v + 3, task.NOTE0, task.derive(v + 3), task.END0 + 1]
    cache = rule.HandRuleCache.__new__(rule.HandRuleCache)  # the rule only: no model
    cache.tokens, cache.prompt_len = prompt + thinking, len(prompt)
    kept = [p for p in range(len(cache.tokens)) if cache.needed(p)]
    note = len(prompt) + 6
    assert kept == [0, 4, 5, 6, 9, 10, 11] + list(range(note, note + 5))
