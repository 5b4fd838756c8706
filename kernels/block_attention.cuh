#pragma once
// Launcher of the recorder's block attention kernel (DESIGN.md §3, reference
// kernels/block_attention_cpu.cpp). No torch or CUDA headers: kernels/block_attention_op.cpp includes
// this on every build and calls it only when the kernels are built.
#include <cstdint>

#include "kernels/element_type.h"

namespace foresight {

// Causal attention over one sequence and its block means, without the L x L matrix.
// q [len, heads, dim], k and v [len, kv_heads, dim], out [len, heads, dim]: contiguous, `type`.
// blocks: float [kv_heads, len, ceil(len / block)], every element written (zeros above the
// diagonal). lse: float workspace [heads, len]. heads a multiple of kv_heads, dim <= 256.
// Returns a cudaError_t (0 on success) after enqueueing on `stream` (a cudaStream_t).
int launch_block_attention(ElementType type, const void* q, const void* k, const void* v, void* out, float* blocks,
                           float* lse, int64_t len, int64_t heads, int64_t kv_heads, int64_t dim, int64_t block,
                           void* stream);

}  // namespace foresight
