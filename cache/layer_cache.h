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
//
// Tokens arrive in chunks (DESIGN.md §2), each in one piece (teacher forcing) or several (a prompt's
// tail, then one decoded token at a time, §10). "Heads" are whatever the caller folds into the head
// axis: the KV heads of one sequence, or those of a batch of sequences side by side.
class LayerCache {
 public:
  // Starts a chunk of `queries` tokens: cum_decay decays (x 0.9) once for the entries already
  // cached, and with `keep_rows` the chunk's attention rows are kept for candidates() (a chunk
  // that may end with an eviction step).
  void begin_chunk(int64_t queries, bool keep_rows);

  // Attends the next T tokens of the chunk (at absolute positions start..start+T-1) over the cache
  // and themselves, causally among the new ones, and appends them. cum and cum_decay add the
  // column sums, so that at the chunk's end cum += the chunk's column sums and
  // cum_decay = 0.9 * cum_decay + the same; new entries start at their own column sums.
  // Returns the attention output [T, H, d].
  at::Tensor append(const LayerQKV& qkv, int64_t start);

  // After the last piece of a chunk begun with keep_rows: the first `budget` entries (the
  // candidates) with the chunk's statistics of them. layer and step are left 0 for the caller.
  CacheStep candidates(int64_t budget) const;

  // Drops `slots` [heads, W] (int64, each < budget) of the first `budget` entries; survivors keep
  // their order and the later entries follow them.
  void evict(const at::Tensor& slots, int64_t budget);

  // Every head becomes `times` heads, the copies tiled (all heads, then all heads again ...), with
  // the chunk's bookkeeping: a cache of one sequence becomes that of a batch of identical ones, in
  // the order the budgeted decoder folds a batch. Each copy then evolves on its own.
  void repeat_heads(int64_t times);

  int64_t size() const { return keys_.defined() ? keys_.size(1) : 0; }
  const at::Tensor& positions() const { return positions_; }  // int64 [heads, size]

 private:
  at::Tensor keys_, values_;      // [heads, S, d], compute dtype
  at::Tensor cum_, cum_decay_;    // float32 [heads, S, G]
  at::Tensor positions_;          // int64 [heads, S]

  int64_t chunk_queries_ = 0, chunk_filled_ = 0;
  bool keep_rows_ = false;
  at::Tensor rows_;               // float32 [heads, G, queries, S at the chunk's end]: 0 where masked or not yet come
  ChunkStatistics whole_chunk_;   // the kernel's statistics when the chunk came in one piece
};

}  // namespace foresight
