#pragma once
// The LibTorch layer of the block attention kernel (kernels/README.md): the recorder's call.
#include <ATen/core/Tensor.h>

#include "kernels/block_attention_cpu.h"

namespace foresight {

// block_attention (kernels/block_attention_cpu.h) on either device, after checking shapes, dtypes
// (float32, float16, bfloat16, all alike) and devices. CPU tensors go to the tiled LibTorch
// implementation with `tiles`, bit for bit what the recorder computed before the kernel; CUDA
// tensors go to the kernel (kernels/block_attention.cu: head_dim <= 256), which tiles on its own.
BlockAttention block_attention_op(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t block,
                                  const RecorderTiles& tiles = {});

}  // namespace foresight
