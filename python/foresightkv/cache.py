"""A HF transformers cache that evicts on the schedule of DESIGN.md §2/§10, as the C++ runtime's
decode-time eviction does (cache/budgeted_decoder.cpp, cache/layer_cache.cpp):

- the first B tokens form the initial chunk, then chunks of W; each time a chunk of W is full and
  another token arrives, every layer and KV head drops W of its B older entries (the W newest are
  protected), chosen by the policy, and the cache is compacted for real: a gather per head, every
  head keeping the same count, so a layer never holds more than B + W entries;
- per entry, the running totals `cum` and `cum_decay` (float32 [kv, S, G]) and the chunk's
  attention rows feed the statistics of §4 (policy/features.cpp), and move with the survivors;
- the first P positions (`protect`: a count, or the whole prompt) are never dropped (DESIGN.md §2).
  They stay in the first P slots for good (survivors keep their order), inside B, so their scores
  become -inf before the drop rule, for every policy, as kernels/drop_selection.cpp's
  mask_protected does; each step drops W of the B - P older unprotected entries, and P <= B - W.

Queries. The statistics need the chunk's post-RoPE queries (after q_norm where the model has one),
which transformers never hands to a cache. A forward pre-hook on each attention module recomputes
them from the layer's input, with the module's own q_proj, q_norm and the modeling file's own
apply_rotary_pos_emb: the same ops on the same tensors as the module's forward, so the same
numbers, with no copy of the model and no change to its config or attention implementation. The
attention output itself stays transformers' (eager or sdpa) over the compacted keys, with a mask
sized by get_mask_sizes to what update() will return. The hooks act only when the forward is given
this cache; `close()` removes them.

A prompt that crosses a chunk end cannot go through one forward: every layer would see all its
tokens before any eviction. `prefill()` feeds it in pieces that end at chunk ends (as the C++
decoder's feed does), and `generate()` prefills all but the last prompt token before calling
`model.generate`; a piece that crosses a chunk end is refused with a message saying so.
"""
from __future__ import annotations

import math
import re
import sys
import weakref
from typing import Any, Optional

import torch
from transformers.cache_utils import Cache, CacheLayerMixin

from .export import ARCHITECTURES, ExportError, Scorer, check_schedule

POLICIES = ("foresight", "foresight_sampled", "streaming_llm", "h2o")
DEFAULT_PROTECT = {"streaming_llm": 4}  # StreamingLLM's attention sinks (policy/registry.cpp); every other policy: 0
_MASK64 = (1 << 64) - 1


def _chunk_statistics(probs: torch.Tensor) -> list[torch.Tensor]:
    """Rows 1-6 of DESIGN.md §4 from the chunk's probs [kv, G, T, S], each [kv, S, G]
    (kernels/chunk_statistics.cpp)."""
    t = probs.shape[2]

    def last(n):
        return probs[:, :, max(0, t - n):].sum(2).transpose(1, 2)

    return [probs.max(2).values.transpose(1, 2), probs.min(2).values.transpose(1, 2),
            probs.sum(2).transpose(1, 2), last(16), last(8), last(32)]


def mask_protected(scores: torch.Tensor, protect: int) -> torch.Tensor:
    """DESIGN.md §2's protected entries sit in the first `protect` slots of the candidates (never
    dropped, survivors keep their order): their scores [..., B] become -inf, so that neither drop rule
    picks them (kernels/drop_selection.cpp's mask_protected); `scores` itself when nothing is protected."""
    if protect == 0:
        return scores
    slots = torch.arange(scores.shape[-1], device=scores.device)
    return scores.masked_fill(slots < protect, float("-inf"))


def parse_protect(value) -> "int | str":
    """`protect` as given: None (the policy's default), a count N >= 0, or "prompt"; as text (the CLI's
    --protect), "prompt" or a count, as cache/schedule.cpp's Protect::parse reads it. Anything else raises."""
    if value is None or value == "prompt":
        return value
    if isinstance(value, str):
        if re.fullmatch(r"[0-9]+", value):  # digits only, as Protect::parse: no sign, no space
            return int(value)
        raise ValueError(f'protect is "{value}", expected 0, a count of first positions, or "prompt"')
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"protect is {value!r}, expected None (the policy's default), a count of first positions "
                         'N >= 0, or "prompt"')
    if value < 0:
        raise ValueError(f'protect is {value}, expected 0, a count of first positions, or "prompt"')
    return value


def resolve_protect(protect: "int | str", budget: int, interval: int, prompt_len: Optional[int] = None) -> int:
    """The protected count P of `protect` (a count, or "prompt": `prompt_len`), refused when more than
    budget - interval, as cache/schedule.cpp's Protect::resolve: the message names the prompt's length
    and the limit."""
    count = prompt_len if protect == "prompt" else protect
    limit = budget - interval
    if count > limit:
        kept = f"its prompt of {prompt_len} tokens" if protect == "prompt" else f"the first {count} positions"
        raise ValueError(f"protect {protect} would keep {kept}, more than budget - interval = {limit} (B {budget}, "
                         f"W {interval}), which leaves fewer than W entries to evict")
    return count


def top_w(scores: torch.Tensor, w: int) -> torch.Tensor:
    """The w highest scores per row (ties to the lower slot), ascending slots (kernels/drop_selection.cpp)."""
    order = scores.sort(dim=-1, descending=True, stable=True).indices
    return order[:, :w].sort(dim=-1).values


def sample_w(scores: torch.Tensor, w: int, generator: torch.Generator) -> torch.Tensor:
    """DESIGN.md §6's sampled rule: softmax over the 2w highest scores, w drawn without replacement,
    ascending slots; on the CPU from a CPU generator, as kernels/drop_selection.cpp's sample_drops."""
    pool = min(2 * w, scores.shape[-1])
    top_scores, top_slots = scores.detach().to("cpu", torch.float).topk(pool, -1)
    picks = torch.multinomial(torch.softmax(top_scores, -1), w, replacement=False, generator=generator)
    return top_slots.gather(-1, picks).sort(-1).values.to(scores.device)


def stream_seed(seed: int, prompt: int, sample: int, purpose: int) -> int:
    """generate/generation.cpp's splitmix64 stream of (seed, prompt, sample, purpose); purpose 2 seeds
    the drops of foresight_sampled, so that the package draws what `foresight-model generate` draws."""
    def mix(x):
        x = (x + 0x9E3779B97F4A7C15) & _MASK64
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
        return x ^ (x >> 31)
    return mix(mix(mix(mix(seed & _MASK64) ^ prompt) ^ sample) ^ purpose)


class ForesightLayer(CacheLayerMixin):
    """One layer's budgeted cache. keys/values [batch, kv, S, d] (what attention reads); cum, cum_decay
    float32 [batch * kv, S, G]; positions int64 [batch * kv, S]. A batch's rows have their own slots:
    the statistics, decisions and compaction fold the batch into the KV-head axis (row r's head h is
    row r * kv + h), every head of every row dropping W per step, so the shapes stay rectangular."""

    is_sliding = False
    is_compileable = False

    def __init__(self, owner: "ForesightCache", index: int):
        super().__init__()
        self.owner, self.index = owner, index
        self.cum = self.cum_decay = self.positions = None
        self.length = 0  # tokens seen (absolute positions 0..length-1)
        self.chunk, self.chunk_start = -1, 0  # chunk -1: the initial one
        self.chunk_queries, self.chunk_filled, self.keep_rows = owner.budget, 0, False
        self.rows = None  # float32 [kv, G, W, S at the chunk's end], 0 where masked or not yet come
        self.whole_chunk = None  # the statistics when the chunk came in one piece
        self.query: Optional[torch.Tensor] = None  # set by the pre-hook, taken by update()
        self.steps = 0

    # -- the transformers API --------------------------------------------------------------------------

    def lazy_initialization(self, key_states: torch.Tensor):
        self.dtype, self.device = key_states.dtype, key_states.device
        self.is_initialized = True

    def size(self) -> int:
        return 0 if self.keys is None else self.keys.shape[2]

    def chunk_end(self) -> int:
        return self.owner.budget if self.chunk < 0 else self.chunk_start + self.owner.interval

    def get_seq_length(self) -> int:
        return self.length

    def get_max_cache_shape(self) -> int:
        return -1

    def get_mask_sizes(self, cache_position: torch.Tensor) -> tuple[int, int]:
        # What update() will return: the entries left after the eviction step it may run first, then
        # the new tokens. kv_offset makes the cached entries' mask indices fall before the first query
        # (all visible) and the new ones causal among themselves.
        queries = cache_position.shape[0]
        entries = self.size()
        if self.length == self.chunk_end() and self.chunk >= 0:
            entries -= self.owner.interval
        return entries + queries, self.length - entries

    # Beam search, contrastive search and assisted decoding reorder, repeat, select or crop a cache's
    # rows and entries; the budgeted state (positions, statistics) would not follow.
    def _unsupported(self, *args, **kwargs):
        raise ValueError("foresightkv: the budgeted cache decodes each row on its own schedule; beam search, "
                         "contrastive search and assisted decoding (which reorder, repeat or crop a cache) are not "
                         "supported: use greedy or sampled decoding")

    reorder_cache = batch_repeat_interleave = batch_select_indices = crop = _unsupported

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor,
               cache_kwargs: Optional[dict[str, Any]] = None) -> tuple[torch.Tensor, torch.Tensor]:
        self.owner._set_batch(key_states.shape[0])
        if not self.is_initialized:
            self.lazy_initialization(key_states)
        if self.length == 0 and self.index == 0:  # a plain model.generate: its first forward is the prompt
            self.owner._begin_prompt(key_states.shape[2])
        query, self.query = self.query, None
        t = key_states.shape[2]
        if query is None or query.shape[2] != t:
            raise RuntimeError("foresightkv: the attention module's queries were not captured; the cache's hooks are "
                               "missing on this model (build the cache with ForesightCache(model, ...) for the model "
                               "that runs, and do not close() it before generating)")
        if self.length == self.chunk_end():
            self._begin_chunk()
        free = self.chunk_end() - self.length
        if t > free:
            raise ValueError(f"foresightkv: {t} tokens at position {self.length} cross the chunk end at "
                             f"{self.chunk_end()} (B {self.owner.budget}, W {self.owner.interval}); a prompt longer "
                             "than that must be fed in pieces: use foresightkv.generate(model, ids, cache, ...) or "
                             "cache.prefill(model, ids[:, :-1]) before model.generate")
        self._append(query, key_states, value_states)
        return self.keys, self.values

    # -- the schedule (cache/layer_cache.cpp, cache/budgeted_decoder.cpp) -----------------------------

    def _begin_chunk(self):
        if self.chunk >= 0:  # a full chunk of W and a token after it: the eviction step
            self._evict()
        self.chunk += 1
        self.chunk_start = self.length
        # cum_decay decays once per chunk, so that at its end cum_decay = 0.9 * before + the chunk's sum.
        if self.size():
            self.cum_decay.mul_(0.9)
        self.chunk_queries, self.chunk_filled, self.keep_rows = self.owner.interval, 0, True
        self.rows, self.whole_chunk = None, None

    def _append(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor):
        t, old = k.shape[2], self.size()
        kv = k.shape[0] * k.shape[1]  # the batch's rows folded into the KV heads
        self.keys = k if old == 0 else torch.cat([self.keys, k], 2)
        self.values = v if old == 0 else torch.cat([self.values, v], 2)
        new_positions = torch.arange(self.length, self.length + t, device=k.device).expand(kv, t)
        self.positions = new_positions.contiguous() if old == 0 else torch.cat([self.positions, new_positions], 1)

        # The chunk's attention probabilities, as kernels/chunk_attention_op.cpp's reference: float32,
        # query i of the piece sees every older entry and the piece's keys 0..i.
        heads, d = q.shape[0] * q.shape[1], q.shape[3]
        qg = q.float().reshape(kv, heads // kv, t, d)
        keys = self.keys.float().reshape(kv, -1, d)
        scores = torch.matmul(qg, keys.unsqueeze(1).transpose(2, 3)) / math.sqrt(d)
        future = torch.arange(t, device=q.device).unsqueeze(0) > torch.arange(t, device=q.device).unsqueeze(1)
        scores[..., self.size() - t:].masked_fill_(future, float("-inf"))
        probs = torch.softmax(scores, -1)  # [kv, G, T, S]
        if self.keep_rows:
            if t == self.chunk_queries:
                self.rows, self.whole_chunk = probs, _chunk_statistics(probs)
            else:  # a chunk in pieces: its rows gather in one buffer, as wide as the cache at the chunk's end
                if self.rows is None:
                    self.rows = probs.new_zeros(kv, probs.shape[1], self.chunk_queries,
                                                old + self.chunk_queries - self.chunk_filled)
                self.rows[:, :, self.chunk_filled:self.chunk_filled + t, :self.size()] = probs
        self.chunk_filled += t
        col = probs.sum(2).transpose(1, 2)  # [kv, S, G]
        if old:
            self.cum = torch.cat([self.cum + col[:, :old], col[:, old:]], 1)
            self.cum_decay = torch.cat([self.cum_decay + col[:, :old], col[:, old:]], 1)
        else:
            self.cum, self.cum_decay = col.clone(), col.clone()
        self.length += t
        self.owner._saw(self.size())

    def _evict(self):
        budget = self.owner.budget
        if self.whole_chunk is not None:
            stats = [s[:, :budget] for s in self.whole_chunk]
        else:
            stats = _chunk_statistics(self.rows[..., :budget])
        cum, cum_decay, positions = self.cum[:, :budget], self.cum_decay[:, :budget], self.positions[:, :budget]
        batch, kv, size, d = self.keys.shape
        keys = self.keys.reshape(batch * kv, size, d)
        values = self.values.reshape(batch * kv, size, d)
        drops = self.owner._decide(self.index, keys[:, :budget], values[:, :budget], stats, cum, cum_decay, positions)
        if self.owner.record_drops:
            self.owner._record(self.index, self.steps, positions.gather(1, drops))
        # Compaction: the survivors of the B older entries in their order, then the later entries.
        keep = torch.ones_like(self.positions, dtype=torch.bool)
        keep.scatter_(1, drops, False)
        index = keep.nonzero()[:, 1].view(keep.shape[0], -1)  # [batch * kv, S - W], ascending per head
        gather = index[:, :, None].expand(-1, -1, d)
        self.keys = keys.gather(1, gather).view(batch, kv, -1, d)
        self.values = values.gather(1, gather).view(batch, kv, -1, d)
        self.cum = self.cum.gather(1, index[:, :, None].expand(-1, -1, self.cum.shape[2]))
        self.cum_decay = self.cum_decay.gather(1, index[:, :, None].expand(-1, -1, self.cum_decay.shape[2]))
        self.positions = self.positions.gather(1, index)
        self.steps += 1


class ForesightCache(Cache):
    """A budgeted KV cache for `model.generate(..., past_key_values=cache)`: one prompt, or a batch of
    prompts of equal length (no padding), each row with its own slots, as the C++ runtime's samples.

    policy: "foresight" (the exported scorer, greedy top-W: the inference rule), "foresight_sampled"
    (W drawn from the softmax over the top 2W scores, from a CPU generator seeded with `seed`),
    "streaming_llm" (the oldest unprotected entries go first, so the most recent stay) or "h2o"
    (accumulated attention). budget/interval default to the scorer's manifest.

    protect (DESIGN.md §2): the first P positions are kept for good, inside B, whatever the policy:
    None for the policy's default (4 for streaming_llm, its attention sinks; 0 for the others), a
    count N (0 <= N <= B - W), or "prompt" for the whole prompt. The prompt is what
    `foresightkv.generate` is given; without it, the first `prefill()` call's input_ids (or its
    `prompt_len`), or else the first forward's tokens (a plain `model.generate`). A prompt longer than
    B - W is refused then, before any of it is fed. `protected` is P once known.

    With record_drops, `drop_positions()` gives every step's dropped absolute positions.
    """

    def __init__(self, model, policy: str = "foresight", scorer: Optional[Scorer] = None,
                 budget: Optional[int] = None, interval: Optional[int] = None, protect: "int | str | None" = None,
                 record_drops: bool = False, seed: int = 0):
        config = model.config
        if config.model_type not in ARCHITECTURES:
            raise ValueError(f"foresightkv: architecture {config.model_type!r} is not supported "
                             f"(expected one of {', '.join(ARCHITECTURES)})")
        if any(t != "full_attention" for t in (getattr(config, "layer_types", None) or [])):
            raise ValueError("foresightkv: sliding-window attention layers are not supported")
        if policy not in POLICIES:
            raise ValueError(f"foresightkv: policy {policy!r} is unknown, expected one of {', '.join(POLICIES)}")
        if policy.startswith("foresight"):
            if scorer is None:
                raise ValueError(f"foresightkv: policy {policy} needs a scorer (foresightkv.load_scorer(DIR, MODEL_DIR))")
            budget = scorer.budget if budget is None else budget
            interval = scorer.interval if interval is None else interval
            self._check_layout(model, scorer)
            scorer.to(model.device)
        if budget is None or interval is None:
            raise ValueError(f"foresightkv: policy {policy} needs budget and interval")
        check_schedule(budget, interval)
        try:
            protect = parse_protect(protect)
            protect = DEFAULT_PROTECT.get(policy, 0) if protect is None else protect
            # A count is checked now; the prompt when it is known (_begin_prompt).
            self.protected: Optional[int] = None if protect == "prompt" else resolve_protect(protect, budget, interval)
        except ValueError as e:
            raise ValueError(f"foresightkv: {e}") from None
        self.policy, self.scorer, self.protect = policy, scorer, protect
        self.prompt_len: Optional[int] = None
        self.budget, self.interval, self.record_drops = budget, interval, record_drops
        self.peak = 0
        self.seed, self.batch = seed, None  # the batch is known at the first forward
        self._padding_checked = False  # by the first forward with a 4D attention mask (_check_padding)
        self.generators: Optional[list[torch.Generator]] = None  # foresight_sampled: one per row, each from `seed`
        self._drops: list[list[torch.Tensor]] = []  # per step, per layer: int64 [batch * kv, W] positions
        decoder = getattr(model, "model", model)  # a *ForCausalLM or its bare *Model
        attention = [layer.self_attn for layer in decoder.layers]
        super().__init__(layers=[ForesightLayer(self, i) for i in range(len(attention))])
        self._hooks = [module.register_forward_pre_hook(_query_hook(weakref.ref(self), i), with_kwargs=True)
                       for i, module in enumerate(attention)]

    @staticmethod
    def _check_layout(model, scorer: Scorer):
        c, b = model.config, scorer.base_model
        heads = c.num_attention_heads
        actual = {"architecture": c.model_type, "layers": c.num_hidden_layers, "heads": heads,
                  "kv_heads": c.num_key_value_heads or heads,
                  "head_dim": getattr(c, "head_dim", None) or c.hidden_size // heads}
        differ = [f"{k} {b.get(k)} vs {v}" for k, v in actual.items() if b.get(k) != v]
        if differ:
            raise ExportError(f"{scorer.path / 'manifest.json'}: the scorer was trained for another model layout "
                              f"(manifest vs model: {', '.join(differ)})")

    # -- what a run reports ------------------------------------------------------------------------------

    def close(self):
        """Removes the query hooks from the model."""
        for h in self._hooks:
            h.remove()
        self._hooks = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def evictions(self) -> int:
        """Eviction steps run (each dropped W entries per layer and KV head)."""
        return self.layers[0].steps

    @property
    def peak_entries(self) -> int:
        """Most entries any layer held per KV head."""
        return self.peak

    def entries(self) -> list[int]:
        """Entries each layer holds now."""
        return [layer.size() for layer in self.layers]

    def drop_positions(self, row: int = 0) -> list[list[list[list[int]]]]:
        """[steps][layers][kv_heads][W] absolute positions that batch row `row` dropped (record_drops=True)."""
        if not self.record_drops:
            raise RuntimeError("foresightkv: drops were not recorded (record_drops=False)")
        steps = self.evictions
        if steps and not 0 <= row < self.batch:
            raise IndexError(f"foresightkv: row {row} of a batch of {self.batch}")
        kv = self._drops[0][0].shape[0] // self.batch if steps else 0
        return [[self._drops[s][layer][row * kv:(row + 1) * kv].tolist() for layer in range(len(self.layers))]
                for s in range(steps)]

    # -- feeding -------------------------------------------------------------------------------------------

    def _begin_prompt(self, prompt_len: int):
        """The prompt is `prompt_len` tokens (the first time only): resolves protect "prompt", refusing a
        prompt longer than B - W before any of it is fed."""
        if self.prompt_len is not None:
            return
        if self.protect == "prompt":
            try:
                self.protected = resolve_protect("prompt", self.budget, self.interval, prompt_len)
            except ValueError as e:
                raise ValueError(f"foresightkv: {e}") from None
        self.prompt_len = prompt_len

    def next_chunk_end(self) -> int:
        length = self.layers[0].length
        if length < self.budget:
            return self.budget
        return self.budget + ((length - self.budget) // self.interval + 1) * self.interval

    @torch.no_grad()
    def prefill(self, model, input_ids: torch.Tensor, prompt_len: Optional[int] = None):
        """Feeds input_ids [batch, T] (rows of equal length, no padding) through the model in pieces that
        end at chunk ends (the schedule's eviction points); returns the last logits [batch, vocab]. The first call tells the cache the
        prompt's length (protect "prompt"): T, or `prompt_len` when input_ids is only the prompt's
        start (as `generate` prefills all but the last token)."""
        if input_ids.dim() != 2:
            raise ValueError(f"foresightkv: expected input_ids [batch, T], got {list(input_ids.shape)}")
        if prompt_len is not None and prompt_len < input_ids.shape[1]:
            raise ValueError(f"foresightkv: prompt_len {prompt_len} is shorter than the {input_ids.shape[1]} tokens fed")
        if self.layers[0].length == 0:
            self._begin_prompt(input_ids.shape[1] if prompt_len is None else prompt_len)
        done, logits = 0, None
        while done < input_ids.shape[1]:
            piece = min(input_ids.shape[1] - done, self.next_chunk_end() - self.layers[0].length)
            out = model(input_ids=input_ids[:, done:done + piece], past_key_values=self, use_cache=True,
                        logits_to_keep=1)
            logits = out.logits[:, -1]
            done += piece
        return logits

    # -- policies (policy/h2o.cpp, policy/streaming_llm.cpp, policy/scorer.cpp) ---------------------------

    def _set_batch(self, batch: int):
        """The batch's row count, fixed by the first forward: each row has its own slots and, for
        foresight_sampled, its own generator seeded with `seed` (so each row draws what a batch of one
        with that seed draws)."""
        if self.batch is None:
            self.batch = batch
            if self.policy == "foresight_sampled":
                self.generators = [torch.Generator().manual_seed(self.seed) for _ in range(batch)]
        elif batch != self.batch:
            raise ValueError(f"foresightkv: the cache holds a batch of {self.batch} rows and this forward has {batch}; "
                             "build a new ForesightCache per batch")

    def _check_padding(self, mask):
        """Refuses a padded batch, once: the first 4D attention mask shows the prompt's padding, and
        checking every layer of every token would read the mask back from the device each time."""
        if self._padding_checked or not isinstance(mask, torch.Tensor) or mask.dim() != 4:
            return
        self._padding_checked = True
        if _padded(mask):
            raise ValueError(_PADDING)

    def _saw(self, size: int):
        self.peak = max(self.peak, size)

    def _record(self, layer: int, step: int, positions: torch.Tensor):
        while len(self._drops) <= step:
            self._drops.append([None] * len(self.layers))
        self._drops[step][layer] = positions.cpu()

    def _decide(self, layer, keys, values, stats, cum, cum_decay, positions) -> torch.Tensor:
        if self.policy == "streaming_llm":
            scores = -positions.float()  # older = more evictable; its sinks are `protect`
        elif self.policy == "h2o":
            scores = -cum.sum(-1)
        else:
            recency = self.scorer.features == "recency"
            mx, mn, sm, s16, s8, s32 = stats
            stacked = torch.stack([mx, mn, sm, s16 if recency else sm, s8 if recency else sm,
                                   s32 if recency else sm, cum, cum_decay], 2)  # [kv, B, 8, G]: statistic-major
            features = torch.cat([keys.float(), values.float(), stacked.flatten(2)], -1)
            # The scorer has weights per KV head: each row's heads are scored as a batch of one is.
            scores = torch.cat([self.scorer.score(layer, f) for f in features.chunk(self.batch)])
        if self.protected is None:  # protect "prompt" with no prompt seen: nothing feeds the cache without one
            raise RuntimeError("foresightkv: protect \"prompt\" but the prompt's length is not known")
        scores = mask_protected(scores, self.protected)
        if self.generators is None:
            return top_w(scores, self.interval)
        return torch.cat([sample_w(row, self.interval, g) for row, g in zip(scores.chunk(self.batch), self.generators)])


_PADDING = ("foresightkv: a padded batch (an attention mask with zeros) is not supported: the schedule counts "
            "every position of a row, padding included, so the rows' evictions would not be their own; batch "
            "prompts of equal length, or decode them one at a time")


def _padded(mask) -> bool:
    """Whether a 4D attention mask hides any of the cache's entries from the piece's last query,
    which sees them all (older entries, the piece causally) unless a row is padded: bool masks keep
    True, additive ones 0."""
    last = mask[..., -1, :]
    return bool((~last).any()) if last.dtype == torch.bool else bool((last != 0).any())


def _query_hook(cache_ref, index: int):
    def hook(module, args, kwargs):
        cache = cache_ref()
        if cache is None:
            return None
        past = kwargs.get("past_key_values", kwargs.get("past_key_value"))
        if past is not cache:
            return None
        cache._check_padding(kwargs.get("attention_mask"))
        hidden = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
        cos, sin = kwargs["position_embeddings"] if "position_embeddings" in kwargs else args[1]
        q = module.q_proj(hidden).view(*hidden.shape[:-1], -1, module.head_dim)
        if hasattr(module, "q_norm"):
            q = module.q_norm(q)
        q = q.transpose(1, 2)
        rope = sys.modules[type(module).__module__].apply_rotary_pos_emb
        cache.layers[index].query = rope(q, q[:, :1], cos, sin)[0]
        return None

    return hook


def generate(model, input_ids, cache: ForesightCache, **kwargs):
    """`model.generate(input_ids, past_key_values=cache, **kwargs)` for one prompt or a batch of prompts
    of equal length [batch, T] (no padding: refused), after prefilling all but their last token through
    the schedule (cache.prefill), as the C++ decoder feeds a prompt. Each row has its own slots and
    decodes as it would alone.
    The prompt is input_ids, whole: what the cache's protect "prompt" keeps (refused, before anything is
    fed, when longer than B - W)."""
    ids = torch.as_tensor(input_ids, device=model.device)
    if ids.dim() == 1:
        ids = ids.unsqueeze(0)
    mask = kwargs.get("attention_mask")
    if mask is not None and not bool(torch.as_tensor(mask).bool().all()):
        raise ValueError(_PADDING)
    if cache.layers[0].length != 0:
        raise ValueError("foresightkv: the cache has been used; build a new ForesightCache per prompt")
    cache._begin_prompt(ids.shape[1])  # protect "prompt": the whole prompt, checked before it is fed
    if ids.shape[1] > 1:
        cache.prefill(model, ids[:, :-1])
    kwargs.setdefault("attention_mask", torch.ones_like(ids))
    return model.generate(ids, past_key_values=cache, **kwargs)
