#!/usr/bin/env python3
"""The testbed task: facts stated in the prompt, long "thinking" that never needs them, then the
facts recalled in order. It is the shape of a reasoning trace where eviction matters: the few
tokens needed at the end are the oldest in the cache, and nothing attends to them in between.

    prompt    <bos> k1 v1 k2 v2 ... kP vP # S <think>
    thinking  S f f f f ; S-1 f f f f ; ... 1 f f f f ;       (S lines, counting down)
    answer    </think> k1 v1 ... kP vP <eos>

Keys, values, line numbers and filler words are disjoint vocabularies. The P keys and the P values
of a problem are distinct, so every fact token occurs once in the prompt and recalling them is a
copy (induction heads). Filler words follow a fixed sparse Markov chain (4 successors each), so the
thinking is text the model can write, with little to learn and nothing to remember. The count S
ends the thinking, so greedy decoding stops.

Problems come from two seed streams, `train` and `heldout`; a training problem whose facts equal a
held-out problem's is skipped (`is_heldout`), so the evaluation problems are never trained on.
Held-out problems 0..63 are the validation set (the choices in README.md were made on them, and
the training script's accuracy log uses them); the reported evaluation starts at 64 (VALIDATION).

Command line (writes JSONL for foresight-model generate and foresight-eval; an existing --out is
refused, and the file appears only when complete):
    task.py prompts  --split train   --count 256 --out prompts.jsonl     # traces are sampled from these
    task.py problems --split heldout --start 64 --count 256 --out problems.jsonl  # foresight-eval generation mode
"""
import os
import random
import sys

PAD, BOS, EOS, THINK, END_THINK, LINE_END, COUNT = range(7)
SPECIAL_NAMES = ["<pad>", "<bos>", "<eos>", "<think>", "</think>", ";", "#", "<unused>"]
NUMBER0, NUMBERS = 8, 64      # line numbers 0..63
KEY0, KEYS = NUMBER0 + NUMBERS, 32
VALUE0, VALUES = KEY0 + KEYS, 32
FILLER0, FILLERS = VALUE0 + VALUES, 32
VOCAB_SIZE = FILLER0 + FILLERS   # 168
WORDS_PER_LINE = 4
SUCCESSORS = 4

FACTS = 8                        # P of the evaluation problems
EVAL_LINES = (40, 56)            # S of the evaluation problems and the traces: 278..374 tokens
HELDOUT_POOL = 2048              # held-out problems excluded from training
VALIDATION = 64                  # held-out problems 0..63 validate choices; evaluation starts here


def _successor_table():
    rng = random.Random(1234)
    return [rng.sample(range(FILLERS), SUCCESSORS) for _ in range(FILLERS)]


SUCCESSOR = _successor_table()


def number(n):
    assert 0 <= n < NUMBERS
    return NUMBER0 + n


def make_problem(rng, facts=FACTS, lines=EVAL_LINES):
    """A problem drawn from rng: (keys, values, S)."""
    keys = [KEY0 + k for k in rng.sample(range(KEYS), facts)]
    values = [VALUE0 + v for v in rng.sample(range(VALUES), facts)]
    return keys, values, rng.randint(*lines)


def prompt_ids(keys, values, lines):
    ids = [BOS]
    for k, v in zip(keys, values):
        ids += [k, v]
    return ids + [COUNT, number(lines), THINK]


def thinking_ids(rng, lines):
    ids, word = [], rng.randrange(FILLERS)
    for n in range(lines, 0, -1):
        ids.append(number(n))
        for _ in range(WORDS_PER_LINE):
            word = rng.choice(SUCCESSOR[word])
            ids.append(FILLER0 + word)
        ids.append(LINE_END)
    return ids


def answer_ids(keys, values):
    ids = []
    for k, v in zip(keys, values):
        ids += [k, v]
    return ids


def full_sequence(rng, keys, values, lines):
    """(ids, first generated position): the prompt, a sampled thinking, the answer and <eos>."""
    prompt = prompt_ids(keys, values, lines)
    generated = thinking_ids(rng, lines) + [END_THINK] + answer_ids(keys, values) + [EOS]
    return prompt + generated, len(prompt)


def _stream(split, index):
    return random.Random(f"{split}:{index}")


def heldout_problem(index):
    return make_problem(_stream("heldout", index))


_HELDOUT_FACTS = None


def is_heldout(keys, values):
    """Whether these facts (in order) are those of one of the first HELDOUT_POOL held-out problems."""
    global _HELDOUT_FACTS
    if _HELDOUT_FACTS is None:
        _HELDOUT_FACTS = {tuple(answer_ids(*heldout_problem(i)[:2])) for i in range(HELDOUT_POOL)}
    return tuple(answer_ids(keys, values)) in _HELDOUT_FACTS


def train_problem(index):
    """The index-th training problem: drawn from the train stream, skipping held-out facts."""
    rng = _stream("train", index)
    while True:
        keys, values, lines = make_problem(rng)
        if not is_heldout(keys, values):
            return keys, values, lines


def token_name(t):
    if t < NUMBER0:
        return SPECIAL_NAMES[t]
    if t < KEY0:
        return str(t - NUMBER0)
    if t < VALUE0:
        return f"k{t - KEY0}"
    if t < FILLER0:
        return f"v{t - VALUE0}"
    return f"w{t - FILLER0}"


def decode(ids):
    return " ".join(token_name(t) for t in ids)


def vocabulary():
    """The token names, as model/vocab.json holds them."""
    return {"vocab_size": VOCAB_SIZE, "tokens": [token_name(t) for t in range(VOCAB_SIZE)]}


def problem_ids(split, index):
    keys, values, lines = heldout_problem(index) if split == "heldout" else train_problem(index)
    return prompt_ids(keys, values, lines), answer_ids(keys, values)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import task_files
    task_files.main(__doc__, problem_ids, [END_THINK], HELDOUT_POOL, VALIDATION)
