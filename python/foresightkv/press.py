"""A kvpress press (NVIDIA kvpress 0.5.5) that evicts with the exported scorer on the DESIGN.md §2
schedule, inside kvpress's own `kv-press-text-generation` pipeline.

kvpress is optional: this module imports it, `import foresightkv` does not.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Optional

import torch
from kvpress import PrefillDecodingPress
from kvpress.presses.base_press import is_prefilling

from .cache import ForesightCache
from .export import Scorer


@dataclass
class ForesightPress(PrefillDecodingPress):
    """The package's eviction (ForesightCache's policies, schedule and compaction) as a kvpress press.

        pipe = pipeline("kv-press-text-generation", model=model, tokenizer=tokenizer)
        press = ForesightPress(scorer=foresightkv.load_scorer(EXPORT, MODEL))
        pipe(context, question=question, press=press, max_new_tokens=2000)["answer"]

    It keeps, per layer, the state of a ForesightCache layer (positions, `cum`, `cum_decay`, the
    chunk's attention rows) beside kvpress's DynamicCache, and after each attention forward it
    replaces the layer's keys/values by that state's compacted ones: entries are removed (gathered
    per KV head, every head the same count), not masked, so a layer holds at most B + W entries
    between forwards. The drops are decided by the same code as ForesightCache's.

    Where kvpress's protocol makes it differ from ForesightCache (`foresightkv.generate`), which
    follows the C++ runtime token for token:

    - It is a PrefillDecodingPress, so that the pipeline hooks it in both phases (a DecodingPress is
      not hooked during prefill, and would never see the context's queries). The schedule is B and W
      (initial chunk B, chunks of W, W of the B older entries dropped after each full chunk, the W
      newest protected); kvpress's decoding attributes `target_size` and `compression_interval` read
      B and W, and `compression_ratio` is the measured fraction evicted so far. Nested as a
      PrefillDecodingPress's decoding press, it behaves as on its own (`reset` ends an entry).
    - kvpress prefills the whole context in one forward (and the question in another), and its hooks
      run after the attention, so every token of such a piece has attended to the whole piece before
      any eviction; ForesightCache feeds a prompt in pieces that end at chunk ends, evicting in
      between. The press replays the schedule over the piece afterwards (the same evictions at the
      same chunk ends, the chunk statistics from the piece's queries over the entries surviving at
      that point) and, when the piece crossed an eviction, replaces the layer's attention output by
      one recomputed over what the schedule left each token (float32 softmax, then o_proj), so the
      next layers see what ForesightCache's piecewise feed gives them. The remaining difference is
      rounding: that recomputation against transformers' sdpa/eager kernel. Measured on tiny
      float32 qwen2/qwen3/llama checkpoints (tests/python/test_foresightkv_press.py): tokens, drop
      sets and kept sets all identical to ForesightCache's; without the recomputation only 0.36 of
      the tokens were.
    - During decoding kvpress feeds one token per forward, as generate does: the press evicts right
      after the forward that completes a chunk (ForesightCache evicts when the next token arrives,
      before its attention), so the next token attends to the same entries. A run that ends exactly
      at a chunk end has one eviction more here, which changes no token.
    - The pipeline is greedy only (`foresight_sampled` draws from the press's own generator, not the
      C++ runtime's per-prompt streams), one question per context. Under `with press(model):
      model.generate(batch)` a batch of prompts of equal length decodes each row on its own slots, as
      ForesightCache does; a padded batch is refused.

    policy/budget/interval/protect/seed are ForesightCache's; with record_drops, `drop_positions()`
    gives every eviction step's dropped absolute positions [steps][layers][kv_heads][W].

    protect (DESIGN.md §2): None (the policy's default: 4 for streaming_llm, else 0), a count N, or
    "prompt". The pipeline's prompt is the context and the question: it prefills the context in one
    forward (the press's first, from position 0) and, entering the press again for decoding, feeds
    the question in the next, so the prompt's length is known when the question arrives, before any
    eviction (a prompt protected whole has at most B - W tokens, so none runs before). A context
    longer than B - W is refused at once; a context and question longer than B - W at the question.
    Under a single entry (`with press(model): model.generate(...)`), the first forward is the prompt.
    """

    scorer: Optional[Scorer] = None
    policy: str = "foresight"
    budget: Optional[int] = None
    interval: Optional[int] = None
    protect: "int | str | None" = None
    record_drops: bool = False
    seed: int = 0
    state: Optional[ForesightCache] = field(default=None, init=False, repr=False)
    _entries: int = field(default=0, init=False, repr=False)  # times the press was entered (__call__)
    _context: Optional[tuple] = field(default=None, init=False, repr=False)  # (tokens, entry) until its question

    def __post_init__(self):
        # PrefillDecodingPress's own fields would be accepted by the dataclass and then never used: the
        # press hooks both phases itself, so it refuses them rather than ignore a user's press.
        for name in ("prefilling_press", "decoding_press"):
            if getattr(self, name) is not None:
                raise ValueError(f"foresightkv: ForesightPress does not take {name} (it evicts in both phases "
                                 f"itself); to chain it with another press, nest it: "
                                 f"PrefillDecodingPress(prefilling_press=..., decoding_press=ForesightPress(...))")

    def post_init_from_model(self, model):
        if self.state is None or self.state._model_id != id(model):
            self._fresh(model)

    def _fresh(self, model):
        # A ForesightCache checks the model, scorer and schedule and holds the per-layer state; its
        # query hooks are not needed here (the press computes the queries itself), so they go at once.
        state = ForesightCache(model, self.policy, self.scorer, self.budget, self.interval, self.protect,
                               self.record_drops, self.seed)
        state.close()
        state._model_id = id(model)
        self.state = state
        self._model = model

    def forward_hook(self, module, input, kwargs: dict, output):
        hidden = kwargs["hidden_states"]
        cache = kwargs["past_key_values"]
        index, t = module.layer_idx, hidden.shape[1]
        if index == 0:
            self._follow_prompt(t and is_prefilling(kwargs["cache_position"], t), t)
        self.state._check_padding(kwargs.get("attention_mask"))
        if t == 0:
            return output
        self.state._set_batch(hidden.shape[0])
        layer = self.state.layers[index]
        cache_layer = cache.layers[index]
        if cache_layer.keys.shape[2] != layer.size() + t:
            raise RuntimeError(f"foresightkv: layer {index} of kvpress's cache holds {cache_layer.keys.shape[2]} "
                               f"entries, the press expected {layer.size()} + {t} (was the cache changed "
                               "outside the press?)")
        if not layer.is_initialized:
            layer.lazy_initialization(cache_layer.keys)
        # The piece's post-RoPE queries, as ForesightCache's pre-hook computes them (q_proj, q_norm
        # where the model has one, the modeling file's apply_rotary_pos_emb).
        cos, sin = kwargs["position_embeddings"]
        q = module.q_proj(hidden).view(*hidden.shape[:-1], -1, module.head_dim)
        if hasattr(module, "q_norm"):
            q = module.q_norm(q)
        q = q.transpose(1, 2)
        q = sys.modules[type(module).__module__].apply_rotary_pos_emb(q, q[:, :1], cos, sin)[0]
        keys, values = cache_layer.keys[:, :, -t:], cache_layer.values[:, :, -t:]
        done, pieces, evicted = 0, [], False
        while done < t:  # the piece replayed in sub-pieces that end at chunk ends
            if layer.length == layer.chunk_end():
                steps = layer.steps
                layer._begin_chunk()
                evicted |= layer.steps != steps
            piece = min(t - done, layer.chunk_end() - layer.length)
            layer._append(q[:, :, done:done + piece], keys[:, :, done:done + piece], values[:, :, done:done + piece])
            pieces.append(_attend(module, q[:, :, done:done + piece], layer.keys, layer.values))
            done += piece
        if layer.length == layer.chunk_end():
            layer._begin_chunk()  # evict now, so that the next token attends to the compacted entries
        cache_layer.keys, cache_layer.values = layer.keys, layer.values
        if evicted:
            # The piece crossed an eviction: its later tokens must not have seen the dropped entries.
            # Their attention output is recomputed over what the schedule left them (float32, then
            # the model's dtype), so the next layers get what ForesightCache's piecewise feed gives.
            attn = torch.cat(pieces, 2).transpose(1, 2).reshape(hidden.shape[0], t, -1).to(output[0].dtype)
            output = (module.o_proj(attn), *output[1:])
        return output

    def _follow_prompt(self, prefilling: bool, t: int):
        """Called on each forward (layer 0) before its tokens are replayed: starts the state over on a
        new context and tells it the prompt's length once known (the context, and the question when it
        comes in a later entry of the press, as kvpress's pipeline feeds it)."""
        state = self.state
        if prefilling:
            self._fresh(self._model)  # a new context: the state starts over
            state = self.state
            self._context = (t, self._entries)
            limit = state.budget - state.interval
            if state.protect == "prompt" and t > limit:
                raise ValueError(f"foresightkv: protect prompt would keep the prompt, whose context alone is {t} tokens, "
                                 f"more than budget - interval = {limit} (B {state.budget}, W {state.interval}), "
                                 "which leaves fewer than W entries to evict")
        elif self._context is not None:
            context, entry = self._context
            self._context = None
            state._begin_prompt(context + t if self._entries != entry else context)

    def __call__(self, model):
        # kvpress's pipeline enters the press twice (prefill, then decoding); the state must live
        # through both, so exiting does not reset it (a new context does, in forward_hook).
        self.post_init_from_model(model)
        self._entries += 1
        return super(PrefillDecodingPress, self).__call__(model)

    def reset(self):
        """kvpress's PrefillDecodingPress calls this on its decoding press after each entry. An entry
        ends, not the run: kvpress's pipeline feeds a context and then its question in two entries, so
        the eviction state lives on until the next context starts (a forward from position 0)."""
        self._entries += 1

    # -- kvpress's press attributes, read-only: what the schedule gives them --------------------------

    @property
    def target_size(self) -> int:
        """kvpress's decoding `target_size`: B, the entries a layer keeps after each eviction."""
        return self._schedule()[0]

    @property
    def compression_interval(self) -> int:
        """kvpress's decoding `compression_interval`: W, the tokens between evictions."""
        return self._schedule()[1]

    @property
    def compression_ratio(self) -> float:
        """The fraction of the tokens seen so far (context, question and generated) that the press has
        evicted: W per eviction step over every token seen, the same for every layer and KV head.
        0 before the first forward. Measured, not set (kvpress's DMSPress has one of the same kind)."""
        if self.state is None or self.state.layers[0].length == 0:
            return 0.0
        return self.state.evictions * self.state.interval / self.state.layers[0].length

    @compression_ratio.setter
    def compression_ratio(self, value):
        raise AttributeError("foresightkv: ForesightPress's compression_ratio is measured, not set: "
                             "the schedule (budget B, interval W) decides what is evicted")

    def _schedule(self) -> tuple[int, int]:
        if self.state is not None:
            return self.state.budget, self.state.interval
        budget = self.budget if self.budget is not None or self.scorer is None else self.scorer.budget
        interval = self.interval if self.interval is not None or self.scorer is None else self.scorer.interval
        if budget is None or interval is None:
            raise ValueError(f"foresightkv: policy {self.policy} needs budget and interval")
        return budget, interval

    # -- what a run reports (as ForesightCache) ------------------------------------------------------

    @property
    def evictions(self) -> int:
        return self.state.evictions if self.state else 0

    @property
    def peak_entries(self) -> int:
        return self.state.peak_entries if self.state else 0

    def drop_positions(self):
        return self.state.drop_positions()


def _attend(module, q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Attention output [batch, heads, t, d] of the piece's queries q [batch, heads, t, d] over the
    layer's entries keys/values [batch, kv, S, d], whose last t are the piece's own (causal among
    themselves)."""
    t, s, kv = q.shape[2], keys.shape[2], keys.shape[1]
    group = q.shape[1] // kv
    k = keys.float().repeat_interleave(group, 1)
    v = values.float().repeat_interleave(group, 1)
    scores = torch.matmul(q.float(), k.transpose(2, 3)) * module.scaling
    future = torch.arange(t, device=q.device).unsqueeze(0) > torch.arange(t, device=q.device).unsqueeze(1)
    scores[..., s - t:].masked_fill_(future, float("-inf"))
    return torch.matmul(torch.softmax(scores, -1), v)
