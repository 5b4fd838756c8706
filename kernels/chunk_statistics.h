#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>

namespace foresight {

// Rows 1-6 of the table in DESIGN.md §4: per key, the chunk's attention over its queries, float32
// [Hkv, S, G] each. `sum` is also the column sum that updates cum and cum_decay.
struct ChunkStatistics {
  at::Tensor max, min, sum, sum16, sum8, sum32;

  ChunkStatistics first(int64_t keys) const;  // the statistics of the first `keys` keys
};

// The statistics from the chunk's attention probs, float32 [Hkv, G, T, S]: the reference that
// the chunk_attention kernel is checked against.
ChunkStatistics chunk_statistics(const at::Tensor& probs);

}  // namespace foresight
