#pragma once
// The LibTorch layer of the chunk attention kernel (kernels/README.md): the budgeted runner's
// attention over the cache, with the per-key statistics of DESIGN.md §4.
#include <ATen/core/Tensor.h>

#include "kernels/chunk_statistics.h"

namespace foresight {

struct ChunkAttention {
  at::Tensor output;      // [T, H, d], q's dtype
  ChunkStatistics stats;  // float32 [Hkv, S, G] each, for every key; `sum` updates cum and cum_decay
  at::Tensor probs;       // float32 [Hkv, G, T, S], 0 where masked; undefined unless asked for
};

// The reference, plain LibTorch ops and the ground truth: the whole [Hkv, G, T, S] softmax in
// float32 and chunk_statistics of it. Always returns probs.
ChunkAttention chunk_attention_reference(const at::Tensor& q, const at::Tensor& keys, const at::Tensor& values);

// T new queries q [T, H, d] over keys and values [Hkv, S, d] (the cache, S >= T), the last T of
// which are the chunk's own: query i sees keys 0..S-T+i. Checks shapes, dtypes (float32, float16,
// bfloat16, all alike) and devices; CPU tensors go to the reference, CUDA tensors to the kernel
// (kernels/chunk_attention.cu: head_dim <= 256), which writes the probabilities only if
// `with_probs` and the statistics from the same pass.
ChunkAttention chunk_attention_op(const at::Tensor& q, const at::Tensor& keys, const at::Tensor& values,
                                  bool with_probs);

}  // namespace foresight
