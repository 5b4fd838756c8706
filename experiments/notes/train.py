#!/usr/bin/env python3
"""Train the notes model (experiments/notes/task.py) from scratch: a 2-layer Qwen3 in HF format,
written with its vocabulary so that foresight-model, foresight-golden and transformers load it alike.
Deterministic for a given --seed and --threads (CPU); the loop and the files are
experiments/tiny_trainer.py's, shared with the first testbed.

The shipped checkpoint experiments/notes/model/ is exactly:
    python experiments/notes/train.py --out experiments/notes/model --seed 1 --eval-every 500 --threads 1
(see experiments/notes/README.md for its time and accuracy).

Curriculum (class Curriculum): more facts and longer thinking once the loss on the checked tokens
(the notes and the answer) is low, and until the thinking reaches full length half of each batch is
the auxiliary copy task over every token, line numbers included: it grows the induction heads that
every lookup of the task is made of, the due-line trigger among them. A scratch line's k, v and r
are weighted --thinking-weight (fixed maps of the token before, learnt early); the rest weighs 1. Every
--eval-every steps the model decodes the first --eval-problems held-out problems greedily and the
answer accuracy is logged to <out>/train_log.jsonl.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import task  # noqa: E402
import tiny_trainer  # noqa: E402

FULL_LINES = 60   # beyond the evaluation's 56, so the longest held-out thinking is inside what was trained


class Curriculum:
    """Level n trains on max(6, h - 24)..h facts, h = min(72, 16 + 8n), and 5..min(60, 8 + 4n) lines
    (due lines from 1).
    The level rises when the running mean of the checked tokens' loss is below `threshold` after at
    least `dwell` steps at the level; it is a function of the losses seen, so the run stays
    deterministic. Without the dwell one lucky batch lifted it to full length before the notes were
    learnt, and the run never recovered (tried here)."""

    def __init__(self, threshold=0.3, dwell=25):
        self.level, self.mean, self.threshold, self.dwell, self.steps = 0, None, threshold, dwell, 0

    def ranges(self):
        top = 8 + 4 * self.level
        facts = min(task.EVAL_FACTS[1], 2 * top)
        return (max(task.QUESTIONS + 2, facts - 24), facts), (task.QUESTIONS + 1, min(FULL_LINES, top))

    def record(self):
        facts, lines = self.ranges()
        return {"facts": facts[1], "lines": lines[1]}

    def update(self, answer_loss):
        self.mean = answer_loss if self.mean is None else 0.9 * self.mean + 0.1 * answer_loss
        self.steps += 1
        if self.mean < self.threshold and self.steps >= self.dwell and self.ranges()[1][1] < FULL_LINES:
            self.level, self.mean, self.steps = self.level + 1, None, 0


def problem_row(ids, start):
    """(ids, first target, light targets, checked targets): the notes' tokens (`ASKa v NOTEj r`) and
    the answer are checked; a scratch line's `k v r` weigh less. Its `tmp` weighs in full: there the
    model decides between a note (the line is due) and scratch."""
    end_think = ids.index(task.END_THINK, start)
    light = [t for t in range(start, end_think) if task.SCRATCH in ids[t - 3:t]]
    checked = [t for t in range(start, len(ids) - 1)   # not the line ends, which are easy
               if t > end_think or task.ASK0 <= ids[t] < task.END0 or task.ASK0 <= ids[t - 1] < task.END0]
    return ids, start, light, checked


def evicted_keys(rng, ids, start, rate):
    """A random eviction the answer survives, as a visibility matrix [L, L] (True: query q sees key
    j): each key the task does not need is hidden with probability `rate` from a random age on (16 to
    64 tokens). Needed, as the hand rule keeps them: <bos>, `# S <think>`, an asked fact until its
    note line has read it, and every note line `n ASKa v NOTEj r`. Trained under such evictions the
    model answers from what the answer needs alone; trained on the full cache only, its due-line
    trigger came to rely on the prompt's plain facts (with them evicted it wrote notes a line early:
    the hand rule answered 0.56 at B 64 on validation problems)."""
    hidden_from = [len(ids)] * len(ids)   # the first query that no longer sees key j
    end_think = ids.index(task.END_THINK, start)
    note_line = set()
    for p in range(start, end_think):
        if task.NOTE0 <= ids[p] < task.END0:
            note_line.update(range(p - 3, p + 2))
    for j in range(1, end_think):
        if start - 3 <= j < start or j in note_line or rng.random() >= rate:
            continue
        hidden_from[j] = j + rng.randint(16, 64)
        if j < start:   # an asked fact (`n ASKa v`) is needed until its note line has read it
            ask = next((q for q in (j, j + 1, j - 1) if task.ASK0 <= ids[q] < task.NOTE0), None)
            if ask is not None:
                hidden_from[j] = max(hidden_from[j], ids.index(ids[ask], start) + 2)
    queries = torch.arange(len(ids)).unsqueeze(1)
    return (queries >= torch.arange(len(ids))) & (queries < torch.tensor(hidden_from))


def training_batch(step, ranges, batch, seed, copies, thinking_weight):
    """(ids, weight, scored, attention mask): `copies` rows of the copy task, then problems; half of
    the problem rows see a random eviction (evicted_keys), the rest the full cache."""
    facts, lines = ranges
    rng = tiny_trainer.seeded(seed, step)
    rows, visible = [], []
    while len(rows) < copies:
        ids, first = tiny_trainer.copy_sequence(rng, list(range(task.NUMBER0, task.VOCAB_SIZE)), task.BOS, task.EOS)
        rows.append((ids, first, (), ()))
        visible.append(None)
    while len(rows) < batch:
        problem = task.make_problem(rng, facts, lines, min_due=1)
        if task.is_heldout(problem):
            continue
        ids, start = task.full_sequence(problem)
        rows.append(problem_row(ids, start))
        visible.append(evicted_keys(rng, ids, start, rng.random()) if rng.random() < 0.5 else None)
    ids, weight, scored = tiny_trainer.batch_tensors(rows, task.PAD, thinking_weight)
    return ids, weight, scored, tiny_trainer.attention_mask(visible, ids.shape[1])


if __name__ == "__main__":
    tiny_trainer.main(__doc__, task, 4000, training_batch, Curriculum(), full_lines=FULL_LINES, max_positions=640)
