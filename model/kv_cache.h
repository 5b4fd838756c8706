#pragma once
#include <ATen/core/Tensor.h>

#include <vector>

#include "model/attention.h"
#include "model/config.h"

namespace foresight {

// The full (never evicting) KV cache for incremental decoding: each layer's keys and values in a
// buffer preallocated to `capacity` tokens, appended to in place.
class KVCache {
 public:
  KVCache(const ModelConfig& config, int64_t capacity, const at::TensorOptions& options);

  // Appends this layer's new keys/values and attends the new queries over everything cached.
  at::Tensor attend(int64_t layer, const LayerQKV& qkv);
  AttentionFn attention();

  int64_t length() const { return lengths_.empty() ? 0 : lengths_.front(); }

 private:
  std::vector<at::Tensor> keys_;
  std::vector<at::Tensor> values_;
  std::vector<int64_t> lengths_;
};

}  // namespace foresight
