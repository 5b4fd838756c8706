"""What the two testbeds' training scripts share (experiments/testbed/train.py, experiments/notes/train.py):
a small Qwen3 in HF format trained from scratch on a synthetic task, deterministic for a given seed
and thread count on the CPU, written into <out>.partial and renamed to <out> when complete (an
existing <out> is refused), with a JSONL log and a greedy held-out accuracy every --eval-every steps.

A task supplies its vocabulary, a curriculum, the batches and the accuracy check; this file owns the
model, the optimiser, the loop and the files.
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


def add_arguments(parser: argparse.ArgumentParser, steps: int, hidden: int = 128, layers: int = 2):
    parser.add_argument("--out", required=True, help="checkpoint directory (must not exist)")
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--layers", type=int, default=layers)
    parser.add_argument("--hidden", type=int, default=hidden)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--kv-heads", type=int, default=2)
    parser.add_argument("--thinking-weight", type=float, default=0.2, help="loss weight of the thinking tokens")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--eval-every", type=int, default=200)
    parser.add_argument("--eval-problems", type=int, default=64)


def model_config(args, vocab_size, bos, eos, pad, max_positions=512):
    from transformers import Qwen3Config
    return Qwen3Config(vocab_size=vocab_size, hidden_size=args.hidden, intermediate_size=args.hidden * 3,
                       num_hidden_layers=args.layers, num_attention_heads=args.heads,
                       num_key_value_heads=args.kv_heads, head_dim=args.hidden // args.heads,
                       max_position_embeddings=max_positions, rope_theta=10000.0, rms_norm_eps=1e-6,
                       tie_word_embeddings=False, bos_token_id=bos, eos_token_id=eos,
                       pad_token_id=pad, torch_dtype="float32")


def copy_sequence(rng, tokens, bos, eos, lengths=(8, 48)):
    """The auxiliary copy task: a random run of `tokens`, then the same run again. Every token of the
    repeat is an induction target, where a problem has only a few copied tokens among hundreds."""
    run = rng.sample(tokens, rng.randint(*lengths))
    return [bos] + run + run + [eos], 2 + len(run)


def batch_tensors(rows, pad, thinking_weight):
    """rows: (ids, first generated position, light, scored): `light` the positions whose token is
    weighted thinking_weight (text with little to learn), `scored` those the curriculum's answer loss
    is over. Token ids [batch, L] (right-padded), the loss weight of each next-token target (1 from the
    first generated token on, thinking_weight where light) and the scored targets."""
    length = max(len(r[0]) for r in rows)
    ids = torch.full((len(rows), length), pad, dtype=torch.long)
    weight = torch.zeros(len(rows), length - 1)
    answer = torch.zeros(len(rows), length - 1, dtype=torch.bool)
    for b, (seq, first, light, scored) in enumerate(rows):
        ids[b, :len(seq)] = torch.tensor(seq)
        weight[b, first - 1:len(seq) - 1] = 1.0      # target t is predicted at position t - 1
        for t in light:
            weight[b, t - 1] = thinking_weight
        for t in scored:
            answer[b, t - 1] = True
    return ids, weight, answer


def attention_mask(visible, length):
    """The additive 4D mask [batch, 1, L, L] transformers takes: per row a visibility matrix [n, n]
    (True: query sees key, causal) for its first n positions, or None for the plain causal mask."""
    allowed = torch.ones(length, length, dtype=torch.bool).tril().repeat(len(visible), 1, 1)
    for b, v in enumerate(visible):
        if v is not None:
            allowed[b, :v.shape[0], :v.shape[1]] = v
    return torch.zeros(allowed.shape).masked_fill(~allowed, torch.finfo(torch.float32).min).unsqueeze(1)


@torch.no_grad()
def greedy_accuracy(model, problems, end_think, eos, pad, max_new_tokens):
    """Greedy full-cache accuracy over problems [(prompt ids, answer ids)]: right when the run after
    the last </think> up to <eos> is the answer. Prompts of one length decode as one batch."""
    by_length = {}
    for prompt, answer in problems:
        by_length.setdefault(len(prompt), []).append((prompt, answer))
    correct = 0
    for group in by_length.values():
        prompts = torch.tensor([p for p, _ in group])
        out = model.generate(prompts, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=eos,
                             pad_token_id=pad)
        for (_, answer), row in zip(group, out[:, prompts.shape[1]:].tolist()):
            if eos in row:
                row = row[:row.index(eos)]
            if end_think in row:
                last = len(row) - 1 - row[::-1].index(end_think)
                correct += row[last + 1:] == answer
    return correct / len(problems)


def train(a, config, batch, curriculum, accuracy, vocabulary, special):
    """The loop. batch(step, curriculum) -> (ids, weight, answer[, attention mask]); curriculum.update(answer_loss) after
    every step and curriculum.record() in the log; accuracy(model) every a.eval_every steps and at the
    end; vocabulary is written as vocab.json beside the weights. special: (bos, eos, pad)."""
    if os.path.exists(a.out):
        sys.exit(f"error: --out {a.out} exists; choose another")
    partial = a.out.rstrip("/") + ".partial"
    shutil.rmtree(partial, ignore_errors=True)  # what a stopped earlier run left
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    from transformers import Qwen3ForCausalLM
    model = Qwen3ForCausalLM(config)
    bos, eos, pad = special
    model.generation_config.eos_token_id = eos
    model.generation_config.pad_token_id = pad
    model.generation_config.bos_token_id = bos
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.98), weight_decay=0.01)
    warmup = 100
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / a.steps))))
    os.makedirs(partial)
    log = open(os.path.join(partial, "train_log.jsonl"), "w")
    start = time.time()
    for step in range(1, a.steps + 1):
        model.train()
        shape = curriculum.record()
        ids, weight, answer, *mask = batch(step, curriculum)
        logits = model(ids, attention_mask=mask[0] if mask else None).logits[:, :-1]
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
                  "seconds": round(time.time() - start, 1)} | shape
        if step % a.eval_every == 0 or step == a.steps:
            model.eval()
            record["heldout_accuracy"] = accuracy(model)
        if step % 50 == 0 or "heldout_accuracy" in record:
            print(json.dumps(record), flush=True)
        log.write(json.dumps(record) + "\n")
        log.flush()
    log.close()
    model.eval()
    model.save_pretrained(partial, safe_serialization=True)
    with open(os.path.join(partial, "vocab.json"), "w") as f:
        json.dump(vocabulary, f, indent=1)
    os.rename(partial, a.out)
    print(f"train: saved {a.out} after {time.time() - start:.0f} s", flush=True)


def main(doc, task, steps, training_batch, curriculum, full_lines, max_positions=512):
    """A task's training command line. task: the module (vocabulary, special ids, problem_ids);
    training_batch(step, ranges, batch, seed, copies, thinking_weight); half of each batch is the copy
    task until the curriculum's thinking reaches full_lines. max_positions: the config's
    max_position_embeddings, at least the longest trace."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p, steps=steps)
    a = p.parse_args()
    config = model_config(a, task.VOCAB_SIZE, task.BOS, task.EOS, task.PAD, max_positions)
    problems = [task.problem_ids("heldout", i) for i in range(a.eval_problems)]

    def batch(step, curriculum):
        ranges = curriculum.ranges()
        copies = a.batch // 2 if ranges[1][1] < full_lines else 0
        return training_batch(step, ranges, a.batch, a.seed, copies, a.thinking_weight)

    def accuracy(model):
        return greedy_accuracy(model, problems, task.END_THINK, task.EOS, task.PAD, max_new_tokens=360)

    train(a, config, batch, curriculum, accuracy, task.vocabulary(), (task.BOS, task.EOS, task.PAD))


def seeded(seed, step):
    """The batch stream of one run: a function of the seed and the step only."""
    return random.Random(f"{seed}:batch:{step}")
