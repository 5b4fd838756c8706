#include "model/kv_cache.h"

#include <ATen/ATen.h>

#include "common/error.h"

namespace foresight {

KVCache::KVCache(const ModelConfig& config, int64_t capacity, const at::TensorOptions& options, int64_t batch)
    : lengths_(static_cast<std::size_t>(config.num_layers), 0) {
  for (int64_t l = 0; l < config.num_layers; ++l) {
    keys_.push_back(at::empty({batch, config.num_kv_heads, capacity, config.head_dim}, options));
    values_.push_back(at::empty({batch, config.num_kv_heads, capacity, config.head_dim}, options));
  }
}

at::Tensor KVCache::attend(int64_t layer, const LayerQKV& qkv) {
  int64_t& len = lengths_.at(static_cast<std::size_t>(layer));
  at::Tensor& keys = keys_[static_cast<std::size_t>(layer)];
  at::Tensor& values = values_[static_cast<std::size_t>(layer)];
  const bool single = qkv.q.dim() == 3;  // a forward over ids [T]
  const auto batched = [&](const at::Tensor& x) { return single ? x.unsqueeze(0) : x; };
  if (batched(qkv.k).size(0) != keys.size(0)) {
    throw Error("KV cache holds " + std::to_string(keys.size(0)) + " sequences, the forward " +
                std::to_string(batched(qkv.k).size(0)));
  }
  const int64_t t = qkv.k.size(-3);
  if (len + t > keys.size(2)) throw Error("KV cache capacity " + std::to_string(keys.size(2)) + " exceeded");
  keys.slice(2, len, len + t).copy_(batched(qkv.k).transpose(1, 2));
  values.slice(2, len, len + t).copy_(batched(qkv.v).transpose(1, 2));
  len += t;
  // causal_attention takes [N, S, Hkv, d]; the transposed views hand SDPA its [N, Hkv, S, d] prefix.
  const at::Tensor out = causal_attention(batched(qkv.q), keys.slice(2, 0, len).transpose(1, 2),
                                          values.slice(2, 0, len).transpose(1, 2));
  return single ? out.squeeze(0) : out;
}

AttentionFn KVCache::attention() {
  return [this](int64_t layer, const LayerQKV& qkv) { return attend(layer, qkv); };
}

}  // namespace foresight
