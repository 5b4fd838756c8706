#!/usr/bin/env python3
"""Train the testbed model (experiments/testbed/task.py) from scratch: a 2-layer Qwen3 in HF
format, written with its vocabulary so that foresight-model, foresight-golden and transformers load
it alike. Deterministic for a given --seed and --threads (CPU).

The shipped checkpoint experiments/testbed/model/ is exactly:
    python experiments/testbed/train.py --out experiments/testbed/model
(see experiments/testbed/README.md for its time and accuracy).

Curriculum (class Curriculum): longer thinking and more facts once the recalled facts' loss is
low, and until the thinking reaches full length half of each batch is an auxiliary copy task
(copy_sequence). The loss covers every generated token, the thinking's weighted by
--thinking-weight (the prompt is given). Every --eval-every steps the model decodes the first
--eval-problems held-out problems greedily and the answer accuracy is logged to
<out>/train_log.jsonl.

The run is written into <out>.partial and renamed to <out> when complete, so a stopped run never
leaves a folder that looks like a model; an existing <out> is refused.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import task  # noqa: E402
import tiny_trainer  # noqa: E402


class Curriculum:
    """Longer thinking and more facts once the answer is learnt at the current level: level n
    trains on 2..min(8, 2 + n) facts and 1..4 + 4n lines (60 at most). The level rises when the
    running mean of the answer tokens' loss falls below `threshold`; it is a function of the
    losses seen, so the run stays deterministic."""

    def __init__(self, threshold=0.3):
        self.level, self.mean, self.threshold = 0, None, threshold

    def ranges(self):
        return (2, min(task.FACTS, 2 + self.level)), (1, min(60, 4 + 4 * self.level))

    def record(self):
        facts, lines = self.ranges()
        return {"facts": facts[1], "lines": lines[1]}

    def update(self, answer_loss):
        self.mean = answer_loss if self.mean is None else 0.9 * self.mean + 0.1 * answer_loss
        if self.mean < self.threshold and self.ranges()[1][1] < 60:
            self.level, self.mean = self.level + 1, None


def training_batch(step, ranges, batch, seed, copies, thinking_weight):
    """Token ids [batch, L] (right-padded), the loss weight of each next-token target, and which
    targets are recalled facts. The first `copies` rows are copy sequences (keys and values)."""
    facts, lines = ranges
    rng = tiny_trainer.seeded(seed, step)
    rows = []   # (ids, first target, thinking targets, recalled-fact targets)
    while len(rows) < copies:
        ids, first = tiny_trainer.copy_sequence(rng, list(range(task.KEY0, task.FILLER0)), task.BOS, task.EOS)
        rows.append((ids, first, (), ()))
    while len(rows) < batch:
        keys, values, n = task.make_problem(rng, rng.randint(*facts), lines)
        if len(keys) == task.FACTS and task.is_heldout(keys, values):
            continue
        ids, start = task.full_sequence(rng, keys, values, n)
        recall = len(ids) - 1 - 2 * len(keys)
        rows.append((ids, start, range(start, recall), range(recall, len(ids) - 1)))  # <eos> not scored
    return tiny_trainer.batch_tensors(rows, task.PAD, thinking_weight)


if __name__ == "__main__":
    tiny_trainer.main(__doc__, task, 1200, training_batch, Curriculum(), full_lines=60)
