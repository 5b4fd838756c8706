#!/usr/bin/env python3
"""The headroom on the notes task: a task-aware hand rule, for this measurement only, that keeps
exactly the tokens the answer needs, run under the same schedule as every policy (DESIGN.md §2 and
§10: prefill through the schedule, greedy top-W drops of the B older entries every W tokens).

Kept, in every layer and KV head: <bos> and the prompt's `# S <think>` (the countdown's start); an
asked fact in the prompt (`n ASKa v`) until the thinking has looked it up; every note's line
`n ASKa v NOTEj r` once written (kept to `NOTEj r` only, the answer fails: the model's recall reads
the whole note). Everything else goes oldest first. It reads the tokens, which no real policy may:
it is the upper bound a learned scorer can reach on this task, not a policy.

    hand_rule.py --model experiments/notes/model --problems problems.jsonl --budgets 32 48 64 [--interval 8]

Runs through the Python package's budgeted cache (foresightkv.ForesightCache, equal to the C++
runtime drop for drop), greedy, and prints the answer accuracy ± its standard error per budget.
"""
import argparse
import json
import math
import os
import sys

import torch
from transformers import AutoModelForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import task  # noqa: E402
from foresightkv import ForesightCache, generate  # noqa: E402
from foresightkv.cache import mask_protected, top_w  # noqa: E402


class HandRuleCache(ForesightCache):
    """ForesightCache with the hand rule's drops. The tokens it has seen come from a hook on the
    model's embedding: position p holds tokens[p]."""

    def __init__(self, model, budget, interval):
        super().__init__(model, policy="streaming_llm", budget=budget, interval=interval, protect=0)
        self.tokens: list[int] = []
        embed = model.get_input_embeddings()
        self._hooks.append(embed.register_forward_pre_hook(lambda _, args: self.tokens.extend(args[0][0].tolist())))

    def needed(self, p):
        tokens, prompt = self.tokens, self.prompt_len
        if p == 0 or prompt - 3 <= p < prompt:
            return True                                   # <bos>, and `# S <think>`, where the countdown starts
        if p >= prompt:                                   # a written note's line `n ASKa v NOTEj r` (the answer reads all five)
            return any(task.NOTE0 <= tokens[q] < task.END0 for q in range(max(prompt, p - 1), min(len(tokens), p + 4)))
        ask = next((q for q in (p, p + 1, p - 1) if task.ASK0 <= tokens[q] < task.NOTE0), None)
        return ask is not None and not self.looked_up(tokens[ask])

    def looked_up(self, label):
        """Whether the thinking has written `ASKa v` for this label: the label itself may be the token
        being fed, whose query still needs the fact."""
        thinking = self.tokens[self.prompt_len:-1]
        return label in thinking

    def _decide(self, layer, keys, values, stats, cum, cum_decay, positions):
        keep = torch.tensor([[self.needed(p) for p in row] for row in positions.tolist()])
        scores = torch.where(keep, torch.tensor(-1e9), -positions.float())   # higher = dropped first
        return top_w(mask_protected(scores, self.protected), self.interval)


def answer_of(generated):
    if task.EOS in generated:
        generated = generated[:generated.index(task.EOS)]
    if task.END_THINK not in generated:
        return None
    return generated[len(generated) - generated[::-1].index(task.END_THINK):]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--problems", required=True, help="task.py problems --split heldout ... (JSONL)")
    p.add_argument("--budgets", type=int, nargs="+", required=True)
    p.add_argument("--interval", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=360)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32, attn_implementation="eager").eval()
    problems = [json.loads(line) for line in open(a.problems)]
    print(f"{'B':>5} {'accuracy':>9} {'s.e.':>6}  (hand rule, {len(problems)} problems, W {a.interval}, greedy)")
    for budget in a.budgets:
        right = 0
        for problem in problems:
            cache = HandRuleCache(model, budget, a.interval)
            with torch.no_grad():
                out = generate(model, problem["input_ids"], cache, max_new_tokens=a.max_new_tokens, do_sample=False,
                               eos_token_id=task.EOS, pad_token_id=task.PAD)
            cache.close()
            right += answer_of(out[0, len(problem["input_ids"]):].tolist()) == problem["answer_ids"]
        acc = right / len(problems)
        print(f"{budget:>5} {acc:>9.3f} {math.sqrt(acc * (1 - acc) / len(problems)):>6.3f}", flush=True)


if __name__ == "__main__":
    main()
