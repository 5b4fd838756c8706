#!/usr/bin/env python3
"""Train the notes model (experiments/notes/task.py) from scratch: a 2-layer Qwen3 in HF format,
written with its vocabulary so that foresight-model, foresight-golden and transformers load it alike.
Deterministic for a given --seed and --threads (CPU); the loop and the files are
experiments/tiny_trainer.py's, shared with the first testbed.

The shipped checkpoint experiments/notes/model/ is exactly:
    python experiments/notes/train.py --out experiments/notes/model
(see experiments/notes/README.md for its time and accuracy).

Curriculum (class Curriculum): more facts and longer thinking once the loss on the checked tokens
(the notes and the answer) is low, and until the thinking reaches full length half of each batch is
the auxiliary copy task over every token but filler, line numbers included: it grows the induction
heads that every lookup of the task is made of, the due-line trigger among them. Filler
words are weighted --thinking-weight (they are random); numbers, notes and the answer weigh 1. Every
--eval-every steps the model decodes the first --eval-problems held-out problems greedily and the
answer accuracy is logged to <out>/train_log.jsonl.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import task  # noqa: E402
import tiny_trainer  # noqa: E402

FULL_LINES = 60   # beyond the evaluation's 56, so the longest held-out thinking is inside what was trained


class Curriculum:
    """Level n trains on 6..min(40, 8 + 4n) facts and 5..min(60, 8 + 4n) lines (due lines from 1).
    The level rises when the running mean of the checked tokens' loss is below `threshold` after at
    least `dwell` steps at the level; it is a function of the losses seen, so the run stays
    deterministic. Without the dwell one lucky batch lifted it to full length before the notes were
    learnt, and the run never recovered (tried here)."""

    def __init__(self, threshold=0.3, dwell=25):
        self.level, self.mean, self.threshold, self.dwell, self.steps = 0, None, threshold, dwell, 0

    def ranges(self):
        top = 8 + 4 * self.level
        return (task.QUESTIONS + 2, min(task.EVAL_FACTS[1], top)), (task.QUESTIONS + 1, min(FULL_LINES, top))

    def record(self):
        facts, lines = self.ranges()
        return {"facts": facts[1], "lines": lines[1]}

    def update(self, answer_loss):
        self.mean = answer_loss if self.mean is None else 0.9 * self.mean + 0.1 * answer_loss
        self.steps += 1
        if self.mean < self.threshold and self.steps >= self.dwell and self.ranges()[1][1] < FULL_LINES:
            self.level, self.mean, self.steps = self.level + 1, None, 0


def problem_row(ids, start):
    """(ids, first target, filler targets, checked targets): the notes' tokens and the answer are
    checked; the filler words weigh less, all but a line's first word, where the model decides
    between a note (the line is due) and filler: greedy decoding writes a note wherever the labels'
    probability beats the likeliest word's (1/4), so that choice weighs in full."""
    light = [t for t in range(start, len(ids)) if ids[t] >= task.FILLER0 and ids[t - 1] >= task.FILLER0]
    checked = [t for t in range(start, len(ids) - 1)   # the notes and the answer; not the line ends, which are easy
               if task.VALUE0 <= ids[t] < task.FILLER0 and not task.END0 <= ids[t] < task.RESULT0]
    return ids, start, light, checked


def training_batch(step, ranges, batch, seed, copies, thinking_weight):
    facts, lines = ranges
    rng = tiny_trainer.seeded(seed, step)
    rows = []
    while len(rows) < copies:
        ids, first = tiny_trainer.copy_sequence(rng, list(range(task.NUMBER0, task.FILLER0)), task.BOS, task.EOS)
        rows.append((ids, first, (), ()))
    while len(rows) < batch:
        problem = task.make_problem(rng, facts, lines, min_due=1)
        if task.is_heldout(problem):
            continue
        rows.append(problem_row(*task.full_sequence(rng, problem)))
    return tiny_trainer.batch_tensors(rows, task.PAD, thinking_weight)


if __name__ == "__main__":
    tiny_trainer.main(__doc__, task, 4000, training_batch, Curriculum(), full_lines=FULL_LINES)
