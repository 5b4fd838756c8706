#pragma once
#include <ATen/core/Tensor.h>

#include "cache/cache_step.h"
#include "kernels/chunk_statistics.h"
#include "model/attention.h"

namespace foresight {

// One layer's budgeted KV cache: keys, values, absolute positions and the running attention totals
// `cum` and `cum_decay` of every entry, compacted in place when entries are dropped. Attention is
// computed by chunk_attention (kernels/chunk_attention_op.h), not SDPA, because the features need
// statistics of the probabilities themselves: the reference on CPU, the kernel on CUDA.
class LayerCache {
 public:
  // Attends T new tokens (at absolute positions start..start+T-1) over the cache and themselves,
  // causally among the new ones, and appends them. cum += this chunk's column sums and
  // cum_decay = 0.9 * cum_decay + column sums; new entries start at their own column sums.
  // Returns the attention output [T, H, d].
  at::Tensor append(const LayerQKV& qkv, int64_t start);

  // The first `budget` entries (the candidates) after the last append, with the append's statistics
  // of them: no second pass over the chunk. layer and step are left 0 for the caller to set.
  CacheStep candidates(int64_t budget) const;

  // Drops `slots` [Hkv, W] (int64, each < budget) of the first `budget` entries; survivors keep
  // their order and the later entries follow them.
  void evict(const at::Tensor& slots, int64_t budget);

  int64_t size() const { return keys_.defined() ? keys_.size(1) : 0; }
  const at::Tensor& positions() const { return positions_; }  // int64 [Hkv, size]

 private:
  at::Tensor keys_, values_;      // [Hkv, S, d], compute dtype
  at::Tensor cum_, cum_decay_;    // float32 [Hkv, S, G]
  at::Tensor positions_;          // int64 [Hkv, S]
  at::Tensor last_probs_;         // float32 [Hkv, G, T, S]: the last append's attention
  ChunkStatistics last_stats_;    // float32 [Hkv, S, G] each: its statistics of every key
};

}  // namespace foresight
