#pragma once
#include <ATen/core/Tensor.h>

#include <vector>

#include "model/attention.h"
#include "model/config.h"

namespace foresight {

// The full (never evicting) KV cache for incremental decoding of `batch` sequences that advance
// together: each layer's keys and values in a buffer preallocated to `capacity` tokens, appended
// to in place. A forward over ids [T] (batch 1) or [N, T] both work.
class KVCache {
 public:
  KVCache(const ModelConfig& config, int64_t capacity, const at::TensorOptions& options, int64_t batch = 1);

  // Appends this layer's new keys/values and attends the new queries over everything cached.
  at::Tensor attend(int64_t layer, const LayerQKV& qkv);
  AttentionFn attention();

  int64_t length() const { return lengths_.empty() ? 0 : lengths_.front(); }

 private:
  std::vector<at::Tensor> keys_;    // [N, Hkv, capacity, d] each: a prefix is what SDPA reads, uncopied
  std::vector<at::Tensor> values_;
  std::vector<int64_t> lengths_;
};

}  // namespace foresight
