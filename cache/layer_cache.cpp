#include "cache/layer_cache.h"

#include <ATen/ATen.h>

#include "kernels/chunk_attention_op.h"
#include "kernels/select_compact_op.h"

namespace foresight {

at::Tensor LayerCache::append(const LayerQKV& qkv, int64_t start) {
  const int64_t t = qkv.q.size(0), kv = qkv.k.size(1), old = size();
  const auto i64 = at::TensorOptions().dtype(at::kLong).device(qkv.q.device());
  const at::Tensor new_keys = qkv.k.permute({1, 0, 2});
  const at::Tensor new_values = qkv.v.permute({1, 0, 2});
  keys_ = old ? at::cat({keys_, new_keys}, 1) : new_keys.contiguous();
  values_ = old ? at::cat({values_, new_values}, 1) : new_values.contiguous();
  const at::Tensor new_positions = at::arange(start, start + t, i64).expand({kv, t});
  positions_ = old ? at::cat({positions_, new_positions}, 1) : new_positions.contiguous();

  // The probabilities too: candidates() hands them to the baselines (CacheStep::attention).
  ChunkAttention chunk = chunk_attention_op(qkv.q, keys_, values_, /*with_probs=*/true);
  last_probs_ = chunk.probs;
  last_stats_ = chunk.stats;
  const at::Tensor& col = chunk.stats.sum;  // [Hkv, S+T, G]
  if (old) {
    cum_ = at::cat({cum_ + col.slice(1, 0, old), col.slice(1, old)}, 1);
    cum_decay_ = at::cat({cum_decay_ * 0.9 + col.slice(1, 0, old), col.slice(1, old)}, 1);
  } else {
    cum_ = col.clone();  // its own storage: evict compacts cum_ in place, last_stats_ must not move
    cum_decay_ = col.clone();
  }
  return chunk.output;
}

CacheStep LayerCache::candidates(int64_t budget) const {
  auto first = [&](const at::Tensor& x) { return x.slice(1, 0, budget); };
  CacheStep step;
  step.keys = first(keys_);
  step.values = first(values_);
  step.stats = last_stats_.first(budget);
  step.cum = first(cum_);
  step.cum_decay = first(cum_decay_);
  step.positions = first(positions_);
  step.attention = last_probs_.slice(3, 0, budget);
  return step;
}

void LayerCache::evict(const at::Tensor& slots, int64_t budget) {
  compact_entries({keys_, values_, cum_, cum_decay_, positions_}, slots, budget);  // in place; the last W are stale
  const int64_t kept = size() - slots.size(1);
  for (at::Tensor* t : {&keys_, &values_, &cum_, &cum_decay_, &positions_}) *t = t->narrow(1, 0, kept);
}

}  // namespace foresight
