#include "cache/layer_cache.h"

#include <ATen/ATen.h>

#include <cmath>
#include <limits>

namespace foresight {

at::Tensor LayerCache::append(const LayerQKV& qkv, int64_t start) {
  const int64_t t = qkv.q.size(0), heads = qkv.q.size(1), dim = qkv.q.size(2), kv = qkv.k.size(1);
  const int64_t g = heads / kv, old = size();
  const auto i64 = at::TensorOptions().dtype(at::kLong).device(qkv.q.device());
  const at::Tensor new_keys = qkv.k.permute({1, 0, 2});
  const at::Tensor new_values = qkv.v.permute({1, 0, 2});
  keys_ = old ? at::cat({keys_, new_keys}, 1) : new_keys.contiguous();
  values_ = old ? at::cat({values_, new_values}, 1) : new_values.contiguous();
  const at::Tensor new_positions = at::arange(start, start + t, i64).expand({kv, t});
  positions_ = old ? at::cat({positions_, new_positions}, 1) : new_positions.contiguous();

  // [Hkv, G, T, S+T] scores; query i sees every cached entry and new keys 0..i.
  const at::Tensor q = qkv.q.to(at::kFloat).permute({1, 0, 2}).reshape({kv, g, t, dim});
  at::Tensor scores = at::matmul(q, keys_.to(at::kFloat).unsqueeze(1).transpose(2, 3)) /
                      std::sqrt(static_cast<double>(dim));
  const at::Tensor future = at::arange(t, i64).unsqueeze(0) > at::arange(t, i64).unsqueeze(1);
  scores.slice(3, old).masked_fill_(future, -std::numeric_limits<float>::infinity());
  last_probs_ = at::softmax(scores, -1);
  const at::Tensor out = at::matmul(last_probs_, values_.to(at::kFloat).unsqueeze(1));  // [Hkv, G, T, d]

  const at::Tensor col = last_probs_.sum(2).transpose(1, 2);  // [Hkv, S+T, G]
  if (old) {
    cum_ = at::cat({cum_ + col.slice(1, 0, old), col.slice(1, old)}, 1);
    cum_decay_ = at::cat({cum_decay_ * 0.9 + col.slice(1, 0, old), col.slice(1, old)}, 1);
  } else {
    cum_ = col;
    cum_decay_ = col.clone();
  }
  return out.reshape({heads, t, dim}).permute({1, 0, 2}).to(qkv.q.scalar_type());
}

at::Tensor LayerCache::candidate_features(int64_t budget, FeatureSet set) const {
  return foresight::candidate_features(candidate_attention(budget), cum_.slice(1, 0, budget),
                                       cum_decay_.slice(1, 0, budget), keys_.slice(1, 0, budget),
                                       values_.slice(1, 0, budget), set);
}

void LayerCache::evict(const at::Tensor& slots, int64_t budget) {
  const int64_t kv = keys_.size(0), s = size(), w = slots.size(1);
  at::Tensor keep = at::ones({kv, s}, at::TensorOptions().dtype(at::kBool).device(keys_.device()));
  keep.slice(1, 0, budget).scatter_(1, slots, false);
  const at::Tensor index = at::arange(s, positions_.options()).expand({kv, s}).masked_select(keep).view({kv, s - w});
  auto take = [&](const at::Tensor& x) { return x.gather(1, index.unsqueeze(-1).expand({kv, s - w, x.size(2)})); };
  keys_ = take(keys_);
  values_ = take(values_);
  cum_ = take(cum_);
  cum_decay_ = take(cum_decay_);
  positions_ = positions_.gather(1, index);
}

}  // namespace foresight
