"""DESIGN.md §3 written directly in numpy, fed by HF transformers' own attention maps: the
independent reference the golden stage is checked against."""
import math

import numpy as np
import torch
from transformers import AutoModelForCausalLM


def hf_attention_and_metrics(model_dir, ids):
    """Per-layer causal attention probabilities [H, L, L] (float64) from HF eager attention, and
    full-cache NLL and entropy."""
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager")
    with torch.no_grad():
        out = model(torch.tensor([ids]), output_attentions=True)
    logp = torch.log_softmax(out.logits[0].double(), -1)[:-1]
    nll = -logp.gather(1, torch.tensor(ids[1:])[:, None])[:, 0]
    entropy = -(logp.exp() * logp).sum(-1)
    return [a[0].double().numpy() for a in out.attentions], nll.numpy(), entropy.numpy(), model.config


def block_attention(probs, group, interval):
    """A[k, j, b]: mean over the group's heads and block b's W query slots (zero-padded)."""
    heads, length, _ = probs.shape
    blocks = math.ceil(length / interval)
    a = np.zeros((heads // group, length, blocks))
    for h in range(heads):
        for q in range(length):
            a[h // group, :, q // interval] += probs[h, q, :] / (group * interval)
    return a


def golden_eviction(a_head, budget, interval, protect=0):
    """The greedy replay for one KV head: a list of cached positions, future = max over the blocks
    after the chunk, drop the W lowest (ties: lower slot) among the positions >= protect, compact.
    Returns per step the dropped slots, their positions and the -future scores of all B candidates."""
    length = a_head.shape[0]
    cache = list(range(budget))
    slots, positions, scores = [], [], []
    s = 0
    while budget + (s + 1) * interval < length:
        first = budget // interval + 1 + s
        future = [a_head[p, first:].max() for p in cache]
        ranked = sorted((i for i in range(budget) if cache[i] >= protect), key=lambda i: (future[i], i))
        drop = sorted(ranked[:interval])
        slots.append(drop)
        positions.append([cache[i] for i in drop])
        scores.append([-f for f in future])
        cache = [p for i, p in enumerate(cache) if i not in set(drop)]
        cache += list(range(budget + s * interval, budget + (s + 1) * interval))
        s += 1
    return np.array(slots, dtype=np.int64), np.array(positions, dtype=np.int64), np.array(scores)
