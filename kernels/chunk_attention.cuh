#pragma once
// Launcher of the budgeted runner's chunk attention with the per-key statistics of DESIGN.md §4
// (reference: chunk_attention_reference in kernels/chunk_attention_op.h). No torch or CUDA
// headers: kernels/chunk_attention_op.cpp includes this on every build and calls it only when the
// kernels are built.
#include <cstdint>

#include "kernels/element_type.h"

namespace foresight {

// The statistics the kernel writes per key and query head, in this order: planes of `stats`.
inline constexpr int kChunkStatistics = 6;  // max, min, sum, sum16, sum8, sum32

// `queries` new queries over `keys` keys, the last `queries` of which are the chunk's own: query i
// sees keys 0..keys - queries + i. q and out [queries, heads, dim]; cached keys and values
// [kv_heads, keys, dim]; all contiguous, `type`. stats: float [6, kv_heads, keys, group] (group =
// heads / kv_heads), the statistic of each key over the chunk's queries, every element written.
// probs: null, or float [kv_heads, group, queries, keys] receiving every probability (0 where
// masked). lse: float workspace [heads, queries]. dim <= 256.
// Returns a cudaError_t (0 on success) after enqueueing on `stream` (a cudaStream_t).
int launch_chunk_attention(ElementType type, const void* q, const void* keys, const void* values, void* out,
                           float* stats, float* probs, float* lse, int64_t queries, int64_t key_count, int64_t heads,
                           int64_t kv_heads, int64_t dim, void* stream);

}  // namespace foresight
