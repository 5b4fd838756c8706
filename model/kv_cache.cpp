#include "model/kv_cache.h"

#include <ATen/ATen.h>

#include "common/error.h"

namespace foresight {

KVCache::KVCache(const ModelConfig& config, int64_t capacity, const at::TensorOptions& options)
    : lengths_(static_cast<std::size_t>(config.num_layers), 0) {
  for (int64_t l = 0; l < config.num_layers; ++l) {
    keys_.push_back(at::empty({capacity, config.num_kv_heads, config.head_dim}, options));
    values_.push_back(at::empty({capacity, config.num_kv_heads, config.head_dim}, options));
  }
}

at::Tensor KVCache::attend(int64_t layer, const LayerQKV& qkv) {
  int64_t& len = lengths_.at(static_cast<std::size_t>(layer));
  at::Tensor& keys = keys_[static_cast<std::size_t>(layer)];
  at::Tensor& values = values_[static_cast<std::size_t>(layer)];
  const int64_t t = qkv.k.size(0);
  if (len + t > keys.size(0)) {
    throw Error("KV cache capacity " + std::to_string(keys.size(0)) + " exceeded");
  }
  keys.slice(0, len, len + t).copy_(qkv.k);
  values.slice(0, len, len + t).copy_(qkv.v);
  len += t;
  return causal_attention(qkv.q, keys.slice(0, 0, len), values.slice(0, 0, len));
}

AttentionFn KVCache::attention() {
  return [this](int64_t layer, const LayerQKV& qkv) { return attend(layer, qkv); };
}

}  // namespace foresight
