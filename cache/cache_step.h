#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>

#include "kernels/chunk_statistics.h"

namespace foresight {

// The raw state of one layer's cache at one eviction step, cut to the B candidates (the older
// slots): what a DropDecider sees. The cache knows no policy; policy/ turns this into a policy's
// inputs (the scorer features of DESIGN.md §4).
struct CacheStep {
  int64_t layer = 0;
  int64_t step = 0;
  at::Tensor keys, values;    // [Hkv, B, d], the cache's dtype; K after RoPE (and k_norm)
  ChunkStatistics stats;      // float32 [Hkv, B, G] each: the last chunk's attention on the candidates
  at::Tensor cum, cum_decay;  // float32 [Hkv, B, G]: running totals, the last chunk included
  at::Tensor positions;       // int64 [Hkv, B]: absolute token positions
  at::Tensor attention;       // float32 [Hkv, G, W, B]: the last chunk's attention probabilities
  int64_t protect = 0;        // the first `protect` slots hold protected entries, never to be dropped
};

}  // namespace foresight
