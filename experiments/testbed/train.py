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
import argparse
import json
import math
import os
import random
import shutil
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import task  # noqa: E402


def model_config(args):
    from transformers import Qwen3Config
    return Qwen3Config(vocab_size=task.VOCAB_SIZE, hidden_size=args.hidden, intermediate_size=args.hidden * 3,
                       num_hidden_layers=args.layers, num_attention_heads=args.heads,
                       num_key_value_heads=args.kv_heads, head_dim=args.hidden // args.heads,
                       max_position_embeddings=512, rope_theta=10000.0, rms_norm_eps=1e-6,
                       tie_word_embeddings=False, bos_token_id=task.BOS, eos_token_id=task.EOS,
                       pad_token_id=task.PAD, torch_dtype="float32")


class Curriculum:
    """Longer thinking and more facts once the answer is learnt at the current level: level n
    trains on 2..min(8, 2 + n) facts and 1..4 + 4n lines (60 at most). The level rises when the
    running mean of the answer tokens' loss falls below `threshold`; it is a function of the
    losses seen, so the run stays deterministic."""

    def __init__(self, threshold=0.3):
        self.level, self.mean, self.threshold = 0, None, threshold

    def ranges(self):
        return (2, min(task.FACTS, 2 + self.level)), (1, min(60, 4 + 4 * self.level))

    def update(self, answer_loss):
        self.mean = answer_loss if self.mean is None else 0.9 * self.mean + 0.1 * answer_loss
        if self.mean < self.threshold and self.ranges()[1][1] < 60:
            self.level, self.mean = self.level + 1, None


def copy_sequence(rng):
    """The auxiliary copy task: a random run of key and value tokens, then the same run again. Every
    token of the repeat is an induction target, where a problem has only its 2P recalled facts."""
    run = rng.sample(range(task.KEY0, task.FILLER0), rng.randint(8, 48))
    return [task.BOS] + run + run + [task.EOS], 2 + len(run)


def training_batch(step, ranges, batch, seed, copies, thinking_weight):
    """Token ids [batch, L] (right-padded), the loss weight of each next-token target, and which
    targets are recalled facts. The first `copies` rows are copy sequences."""
    facts, lines = ranges
    rng = random.Random(f"{seed}:batch:{step}")
    rows = []   # (ids, first target, first answer target)
    while len(rows) < copies:
        ids, first = copy_sequence(rng)
        rows.append((ids, first, None))
    while len(rows) < batch:
        keys, values, n = task.make_problem(rng, rng.randint(*facts), lines)
        if len(keys) == task.FACTS and task.is_heldout(keys, values):
            continue
        ids, start = task.full_sequence(rng, keys, values, n)
        rows.append((ids, start, len(ids) - 1 - 2 * len(keys)))
    length = max(len(r[0]) for r in rows)
    ids = torch.full((batch, length), task.PAD, dtype=torch.long)
    weight = torch.zeros(batch, length - 1)
    answer = torch.zeros(batch, length - 1, dtype=torch.bool)
    for b, (seq, first, recall) in enumerate(rows):
        ids[b, :len(seq)] = torch.tensor(seq)
        weight[b, first - 1:len(seq) - 1] = 1.0      # target t is predicted at position t - 1
        if recall is not None:
            weight[b, first - 1:recall - 1] = thinking_weight
            answer[b, recall - 1:len(seq) - 2] = True  # the 2P recalled facts, <eos> excluded
    return ids, weight, answer


@torch.no_grad()
def heldout_accuracy(model, count, max_new_tokens=360):
    """Greedy full-cache answer accuracy on the first `count` held-out problems (all prompts have the
    same length, so they decode as one batch without padding)."""
    problems = [task.heldout_problem(i) for i in range(count)]
    prompts = torch.tensor([task.prompt_ids(*p) for p in problems])
    out = model.generate(prompts, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=task.EOS,
                         pad_token_id=task.PAD)
    correct = 0
    for (keys, values, _), row in zip(problems, out[:, prompts.shape[1]:].tolist()):
        if task.EOS in row:
            row = row[:row.index(task.EOS)]
        if task.END_THINK in row:
            last = len(row) - 1 - row[::-1].index(task.END_THINK)
            correct += row[last + 1:] == task.answer_ids(keys, values)
    return correct / count


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="checkpoint directory (must not exist)")
    p.add_argument("--steps", type=int, default=1200)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--thinking-weight", type=float, default=0.2, help="loss weight of the thinking tokens")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--eval-every", type=int, default=200)
    p.add_argument("--eval-problems", type=int, default=64)
    a = p.parse_args()
    if os.path.exists(a.out):
        sys.exit(f"error: --out {a.out} exists; choose another")
    partial = a.out.rstrip("/") + ".partial"
    shutil.rmtree(partial, ignore_errors=True)  # what a stopped earlier run left
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    from transformers import Qwen3ForCausalLM
    model = Qwen3ForCausalLM(model_config(a))
    model.generation_config.eos_token_id = task.EOS
    model.generation_config.pad_token_id = task.PAD
    model.generation_config.bos_token_id = task.BOS
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.98), weight_decay=0.01)
    warmup = 100
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / a.steps))))
    os.makedirs(partial)
    log = open(os.path.join(partial, "train_log.jsonl"), "w")
    start = time.time()
    curriculum = Curriculum()
    for step in range(1, a.steps + 1):
        model.train()
        ranges = curriculum.ranges()
        copies = a.batch // 2 if ranges[1][1] < 60 else 0
        ids, weight, answer = training_batch(step, ranges, a.batch, a.seed, copies, a.thinking_weight)
        logits = model(ids).logits[:, :-1]
        nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="none")
        loss = (nll * weight.reshape(-1)).sum() / weight.sum()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        answer_loss = nll[answer.reshape(-1)].mean().item()
        curriculum.update(answer_loss)
        record = {"step": step, "loss": round(loss.item(), 4), "answer_loss": round(answer_loss, 4),
                  "seconds": round(time.time() - start, 1), "facts": ranges[0][1], "lines": ranges[1][1]}
        if step % a.eval_every == 0 or step == a.steps:
            model.eval()
            record["heldout_accuracy"] = heldout_accuracy(model, a.eval_problems)
        if step % 50 == 0 or "heldout_accuracy" in record:
            print(json.dumps(record), flush=True)
        log.write(json.dumps(record) + "\n")
        log.flush()
    log.close()
    model.eval()
    model.save_pretrained(partial, safe_serialization=True)
    with open(os.path.join(partial, "vocab.json"), "w") as f:
        json.dump(task.vocabulary(), f, indent=1)
    os.rename(partial, a.out)
    print(f"train: saved {a.out} after {time.time() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
