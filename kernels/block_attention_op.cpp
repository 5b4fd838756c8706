#include "kernels/block_attention_op.h"

#include <ATen/ATen.h>

#include <string>

#include "kernels/block_attention.cuh"
#include "kernels/op_support.h"

#ifdef FORESIGHT_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#endif

namespace foresight {

namespace {

void check(bool ok, const std::string& message) { check_op(ok, "block_attention", message); }

void check_inputs(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t block) {
  check_attention_inputs("block_attention", "q, k and v", q, k, v);
  check(q.dim() == 3, "q must be [L, H, d], got " + shape_of(q));
  check(k.dim() == 3 && k.sizes() == v.sizes(), "k and v must both be [L, Hkv, d], got " + shape_of(k) + " and " + shape_of(v));
  const int64_t heads = q.size(1), kv_heads = k.size(1);
  check(q.numel() > 0, "q " + shape_of(q) + " is empty");
  check(k.size(0) == q.size(0) && k.size(2) == q.size(2), "k " + shape_of(k) + " does not fit q " + shape_of(q));
  check(kv_heads > 0 && heads % kv_heads == 0, "the " + std::to_string(heads) + " query heads are not a multiple of the " +
                                                   std::to_string(kv_heads) + " KV heads");
  check(block > 0, "the block size must be positive, got " + std::to_string(block));
}

#ifdef FORESIGHT_WITH_CUDA
BlockAttention on_cuda(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t block) {
  const int64_t len = q.size(0), heads = q.size(1), dim = q.size(2), kv_heads = k.size(1);
  check(dim <= 256, "the kernel supports head_dim up to 256, got " + std::to_string(dim));
  const c10::cuda::CUDAGuard device(q.device());
  const at::Tensor qc = q.contiguous(), kc = k.contiguous(), vc = v.contiguous();
  const auto f32 = q.options().dtype(at::kFloat);
  BlockAttention result{at::empty_like(qc), at::empty({kv_heads, len, (len + block - 1) / block}, f32)};
  const at::Tensor lse = at::empty({heads, len}, f32);  // freed here, reused only after the kernels on this stream
  const int rc = launch_block_attention(element_type(q.scalar_type()), qc.data_ptr(), kc.data_ptr(), vc.data_ptr(),
                                        result.output.data_ptr(), result.blocks.data_ptr<float>(),
                                        lse.data_ptr<float>(), len, heads, kv_heads, dim, block,
                                        c10::cuda::getCurrentCUDAStream().stream());
  check(rc == 0, std::string("the kernel failed for q ") + shape_of(q) + ", k " + shape_of(k) + ", block " +
                     std::to_string(block) + ": " + cudaGetErrorString(static_cast<cudaError_t>(rc)));
  return result;
}
#endif

}  // namespace

BlockAttention block_attention_op(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t block,
                                  const RecorderTiles& tiles) {
  check_inputs(q, k, v, block);
  if (q.is_cpu()) return block_attention(q, k, v, block, tiles);
#ifdef FORESIGHT_WITH_CUDA
  return on_cuda(q, k, v, block);
#else
  no_cuda_kernels("block_attention");
#endif
}

}  // namespace foresight
