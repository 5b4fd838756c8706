#include "cache/layer_cache.h"

#include <ATen/ATen.h>

#include <vector>

#include "common/error.h"
#include "kernels/chunk_attention_op.h"
#include "kernels/select_compact_op.h"

namespace foresight {

void LayerCache::begin_chunk(int64_t queries, bool keep_rows) {
  // Decaying here, once, rather than at every piece keeps cum_decay = 0.9 * before + the chunk's sum.
  if (size()) cum_decay_.mul_(0.9);
  chunk_queries_ = queries;
  chunk_filled_ = 0;
  keep_rows_ = keep_rows;
  rows_ = at::Tensor();
  whole_chunk_ = {};
}

at::Tensor LayerCache::append(const LayerQKV& qkv, int64_t start) {
  const int64_t t = qkv.q.size(0), kv = qkv.k.size(1), old = size();
  if (chunk_filled_ + t > chunk_queries_) {
    throw Error("layer cache: " + std::to_string(t) + " tokens overrun the chunk's " +
                std::to_string(chunk_queries_ - chunk_filled_) + " free places");
  }
  const auto i64 = at::TensorOptions().dtype(at::kLong).device(qkv.q.device());
  const at::Tensor new_keys = qkv.k.permute({1, 0, 2});
  const at::Tensor new_values = qkv.v.permute({1, 0, 2});
  keys_ = old ? at::cat({keys_, new_keys}, 1) : new_keys.contiguous();
  values_ = old ? at::cat({values_, new_values}, 1) : new_values.contiguous();
  const at::Tensor new_positions = at::arange(start, start + t, i64).expand({kv, t});
  positions_ = old ? at::cat({positions_, new_positions}, 1) : new_positions.contiguous();

  // The probabilities too: candidates() hands them to the baselines (CacheStep::attention).
  ChunkAttention chunk = chunk_attention_op(qkv.q, keys_, values_, /*with_probs=*/keep_rows_);
  if (keep_rows_) {
    if (t == chunk_queries_) {
      rows_ = chunk.probs;
      whole_chunk_ = chunk.stats;
    } else {
      // A chunk in pieces: its rows gather in one buffer, as wide as the cache at the chunk's end.
      if (!rows_.defined()) {
        rows_ = at::zeros({kv, chunk.probs.size(1), chunk_queries_, old + chunk_queries_ - chunk_filled_},
                          chunk.probs.options());
      }
      rows_.slice(2, chunk_filled_, chunk_filled_ + t).slice(3, 0, size()).copy_(chunk.probs);
    }
  }
  chunk_filled_ += t;
  const at::Tensor& col = chunk.stats.sum;  // [heads, S+T, G]
  if (old) {
    cum_ = at::cat({cum_ + col.slice(1, 0, old), col.slice(1, old)}, 1);
    cum_decay_ = at::cat({cum_decay_ + col.slice(1, 0, old), col.slice(1, old)}, 1);
  } else {
    cum_ = col.clone();  // its own storage: evict compacts cum_ in place, the statistics must not move
    cum_decay_ = col.clone();
  }
  return chunk.output;
}

CacheStep LayerCache::candidates(int64_t budget) const {
  if (!keep_rows_ || chunk_filled_ != chunk_queries_) {
    throw Error("layer cache: candidates are asked for before a kept chunk is complete");
  }
  auto first = [&](const at::Tensor& x) { return x.slice(1, 0, budget); };
  CacheStep step;
  step.keys = first(keys_);
  step.values = first(values_);
  step.attention = rows_.slice(3, 0, budget);
  step.stats = whole_chunk_.sum.defined() ? whole_chunk_.first(budget) : chunk_statistics(step.attention);
  step.cum = first(cum_);
  step.cum_decay = first(cum_decay_);
  step.positions = first(positions_);
  return step;
}

void LayerCache::evict(const at::Tensor& slots, int64_t budget) {
  compact_entries({keys_, values_, cum_, cum_decay_, positions_}, slots, budget);  // in place; the last W are stale
  const int64_t kept = size() - slots.size(1);
  for (at::Tensor* t : {&keys_, &values_, &cum_, &cum_decay_, &positions_}) *t = t->narrow(1, 0, kept);
}

void LayerCache::repeat_heads(int64_t times) {
  const auto tile = [times](at::Tensor& x) {
    if (!x.defined()) return;
    std::vector<int64_t> reps(static_cast<std::size_t>(x.dim()), 1);
    reps[0] = times;
    x = x.repeat(reps);  // fresh storage: evict() compacts these in place, the copies must not share it
  };
  for (at::Tensor* t : {&keys_, &values_, &cum_, &cum_decay_, &positions_, &rows_, &whole_chunk_.max, &whole_chunk_.min,
                        &whole_chunk_.sum, &whole_chunk_.sum16, &whole_chunk_.sum8, &whole_chunk_.sum32}) {
    tile(*t);
  }
}

}  // namespace foresight
