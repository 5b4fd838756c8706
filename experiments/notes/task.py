#!/usr/bin/env python3
"""The notes task: a testbed where the answer needs what the reasoning wrote. The prompt lists many
facts and asks about four of them, each due at a line of the thinking; at that line the thinking
looks the asked fact up and writes a numbered note with a derived result; every other line is a
scratch computation made of the same kinds of tokens (a key, a value, a derived result) that nothing
reads again; the answer recalls the notes in the order they were written. Keeping the prompt cannot
help (it is longer than 128 tokens, and which fact became which note is known only to the thinking),
position cannot tell the notes from the scratch lines around them, and a prompt fact is dead once
its note is written.

    prompt    <bos> F facts, in random order: `k v` (a plain fact) or `n ASKa v` (asked, due at line n) # S <think>
    thinking  S lines counting down, each ended by `;c` (c = notes written so far):
              line n is `n ASKa v NOTEj r ;j` when n is the j-th due line (r = DERIVE[v], a fixed
              bijection from values to results), else the scratch line `n tmp k v r ;c` with
              k = SCRATCH_KEY[n], v = KEY_VALUE[k] and r = DERIVE[v] (fixed tables)
    answer    </think> NOTE1 r1 NOTE2 r2 NOTE3 r3 NOTE4 r4 <eos>

Every step is a copy or a fixed map a 2-layer transformer learns, all local but the lookups: at a
line number it copies the token after that number in the prompt when there is one (ASKa), else
writes `tmp`; ASKa -> v copies the token after ASKa in the prompt; v -> NOTEj maps the line end
three tokens back (;c -> NOTE(c+1)); NOTEj -> r derives from the value; a scratch line's k, v and r
each follow from the token before; a line's end copies the previous one's. In the answer NOTEj -> r
copies the token after NOTEj in the thinking, r -> NOTE(j+1) maps the previous index. The labels
ASKa are assigned at random, not in due order, so nothing in the prompt says which fact is note j:
the answer needs the notes.

Why scratch lines are fixed tables and not random text: evaluation decodes greedily, and greedy
decoding of random filler repeats its likeliest words, so the filler became redundant and R-KV's
redundancy score singled the notes out (it answered 0.84 at B 128 on the first version of this
task, which had a random filler of 128 words). Scratch lines are deterministic and varied, made of
keys, values and results like the notes, so neither redundancy nor position tells them apart.

Keys, values, results, labels, note indices, line ends and line numbers are disjoint vocabularies
(model/vocab.json, 374 ids). Values of a problem are distinct, due lines are distinct, and on
evaluation problems the last is at least MIN_DUE lines before the end, so every note is more than
64 tokens old when the answer starts.

Problems come from two seed streams, `train` and `heldout`; a training problem whose prompt equals
one of the first HELDOUT_POOL held-out prompts is skipped (`is_heldout`). Held-out problems 0..63 are
the validation set (every choice in README.md was made on them; the training log's accuracy uses
them); reported evaluations start at VALIDATION.

Command line (an existing --out is refused; the file appears only when complete):
    task.py prompts  --split train   --count 128 --out prompts.jsonl
    task.py problems --split heldout --start 64 --count 128 --out problems.jsonl
"""
import os
import random
import sys
from typing import NamedTuple

PAD, BOS, EOS, THINK, END_THINK, COUNT = range(6)
SPECIAL_NAMES = ["<pad>", "<bos>", "<eos>", "<think>", "</think>", "#", "<unused6>", "<unused7>"]
NUMBER0, NUMBERS = 8, 64         # line numbers 0..63
KEY0, KEYS = NUMBER0 + NUMBERS, 96
VALUE0, VALUES = KEY0 + KEYS, 96
ASK0, QUESTIONS = VALUE0 + VALUES, 4
NOTE0 = ASK0 + QUESTIONS
END0 = NOTE0 + QUESTIONS         # line ends ;0 .. ;4
RESULT0, RESULTS = END0 + QUESTIONS + 1, VALUES
SCRATCH = RESULT0 + RESULTS      # `tmp`, a scratch line's second token
VOCAB_SIZE = SCRATCH + 1         # 374

EVAL_FACTS = (62, 72)            # F of the evaluation problems: prompts of 2F + 8 = 132..152 tokens
EVAL_LINES = (40, 56)            # S: traces of 382..498 tokens
MIN_DUE = 12                     # the last note is written at least 12 lines (72 tokens) before the answer
HELDOUT_POOL = 2048
VALIDATION = 64


DERIVE = random.Random(4321).sample(range(RESULTS), VALUES)      # value v -> result RESULT0 + DERIVE[v]
SCRATCH_KEY = random.Random(1234).sample(range(KEYS), NUMBERS)   # line n's scratch key KEY0 + SCRATCH_KEY[n]
KEY_VALUE = random.Random(5678).sample(range(VALUES), KEYS)      # key k -> its scratch value VALUE0 + KEY_VALUE[k]


class Problem(NamedTuple):
    facts: tuple     # in prompt order: (key, value) or (due line number token, ASKa, value)
    lines: int       # S


def number(n):
    assert 0 <= n < NUMBERS
    return NUMBER0 + n


def derive(value):
    return RESULT0 + DERIVE[value - VALUE0]


def make_problem(rng, facts=EVAL_FACTS, lines=EVAL_LINES, min_due=MIN_DUE):
    """A problem drawn from rng: F facts (QUESTIONS of them asked) and S lines, due lines in
    [min_due, S - 1]."""
    s = rng.randint(*lines)
    f = rng.randint(*facts)
    assert f >= QUESTIONS and s - min_due >= QUESTIONS, (f, s, min_due)
    values = [VALUE0 + v for v in rng.sample(range(VALUES), f)]
    keys = [KEY0 + k for k in rng.sample(range(KEYS), f - QUESTIONS)]
    due = rng.sample(range(min_due, s), QUESTIONS)
    labels = rng.sample(range(QUESTIONS), QUESTIONS)
    asked = dict(zip(rng.sample(range(f), QUESTIONS), zip(due, labels)))   # fact slot -> (due line, label)
    out, plain = [], iter(keys)
    for slot, value in enumerate(values):
        if slot in asked:
            n, label = asked[slot]
            out.append((number(n), ASK0 + label, value))
        else:
            out.append((next(plain), value))
    return Problem(tuple(out), s)


def questions(problem):
    """[(due line, ASKa token, value)] in the order the notes are written (the latest line first)."""
    return sorted(((f[0] - NUMBER0, f[1], f[2]) for f in problem.facts if len(f) == 3), reverse=True)


def prompt_ids(problem):
    return [BOS] + [t for fact in problem.facts for t in fact] + [COUNT, number(problem.lines), THINK]


def scratch_line(n):
    """Line n's scratch computation after its number: `tmp k v r`."""
    key = KEY0 + SCRATCH_KEY[n]
    value = VALUE0 + KEY_VALUE[key - KEY0]
    return [SCRATCH, key, value, derive(value)]


def thinking_ids(problem):
    notes = {due: (ask, value) for due, ask, value in questions(problem)}
    ids, written = [], 0
    for n in range(problem.lines, 0, -1):
        ids.append(number(n))
        if n in notes:
            ask, value = notes[n]
            ids += [ask, value, NOTE0 + written, derive(value)]
            written += 1
        else:
            ids += scratch_line(n)
        ids.append(END0 + written)
    return ids


def answer_ids(problem):
    return [t for j, (_, _, value) in enumerate(questions(problem)) for t in (NOTE0 + j, derive(value))]


def full_sequence(problem):
    """(ids, first generated position): the prompt, the thinking, the answer and <eos>."""
    prompt = prompt_ids(problem)
    return prompt + thinking_ids(problem) + [END_THINK] + answer_ids(problem) + [EOS], len(prompt)


def _stream(split, index):
    return random.Random(f"notes:{split}:{index}")


def heldout_problem(index):
    return make_problem(_stream("heldout", index))


_HELDOUT_PROMPTS = None


def is_heldout(problem):
    """Whether this problem's prompt is that of one of the first HELDOUT_POOL held-out problems."""
    global _HELDOUT_PROMPTS
    if _HELDOUT_PROMPTS is None:
        _HELDOUT_PROMPTS = {tuple(prompt_ids(heldout_problem(i))) for i in range(HELDOUT_POOL)}
    return tuple(prompt_ids(problem)) in _HELDOUT_PROMPTS


def train_problem(index):
    """The index-th training problem: drawn from the train stream, skipping held-out prompts."""
    rng = _stream("train", index)
    while True:
        problem = make_problem(rng)
        if not is_heldout(problem):
            return problem


def token_name(t):
    if t < NUMBER0:
        return SPECIAL_NAMES[t]
    if t == SCRATCH:
        return "tmp"
    for first, prefix in ((RESULT0, "r"), (END0, ";"), (NOTE0, "NOTE"), (ASK0, "ASK"), (VALUE0, "v"),
                          (KEY0, "k")):
        if t >= first:
            return f"{prefix}{t - first + (1 if prefix == 'NOTE' else 0)}"
    return str(t - NUMBER0)


def decode(ids):
    return " ".join(token_name(t) for t in ids)


def vocabulary():
    """The token names, as model/vocab.json holds them."""
    return {"vocab_size": VOCAB_SIZE, "tokens": [token_name(t) for t in range(VOCAB_SIZE)]}


def problem_ids(split, index):
    problem = heldout_problem(index) if split == "heldout" else train_problem(index)
    return prompt_ids(problem), answer_ids(problem)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import task_files
    task_files.main(__doc__, problem_ids, [END_THINK], HELDOUT_POOL, VALIDATION)
