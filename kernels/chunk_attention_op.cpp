#include "kernels/chunk_attention_op.h"

#include <ATen/ATen.h>

#include <cmath>
#include <limits>
#include <string>

#include "kernels/chunk_attention.cuh"
#include "kernels/op_support.h"

#ifdef FORESIGHT_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#endif

namespace foresight {

namespace {

void check(bool ok, const std::string& message) { check_op(ok, "chunk_attention", message); }

void check_inputs(const at::Tensor& q, const at::Tensor& keys, const at::Tensor& values) {
  check_attention_inputs("chunk_attention", "q, keys and values", q, keys, values);
  check(q.dim() == 3, "q must be [T, H, d], got " + shape_of(q));
  check(keys.dim() == 3 && keys.sizes() == values.sizes(),
        "keys and values must both be [Hkv, S, d], got " + shape_of(keys) + " and " + shape_of(values));
  const int64_t queries = q.size(0), heads = q.size(1), kv_heads = keys.size(0);
  check(q.numel() > 0, "q " + shape_of(q) + " is empty");
  check(keys.size(2) == q.size(2), "keys " + shape_of(keys) + " and q " + shape_of(q) + " differ in head_dim");
  check(keys.size(1) >= queries, "the " + std::to_string(keys.size(1)) + " keys must include the chunk's own " +
                                     std::to_string(queries));
  check(kv_heads > 0 && heads % kv_heads == 0, "the " + std::to_string(heads) + " query heads are not a multiple of the " +
                                                   std::to_string(kv_heads) + " KV heads");
}

#ifdef FORESIGHT_WITH_CUDA
ChunkAttention on_cuda(const at::Tensor& q, const at::Tensor& keys, const at::Tensor& values, bool with_probs) {
  const int64_t queries = q.size(0), heads = q.size(1), dim = q.size(2), kv_heads = keys.size(0), n = keys.size(1);
  const int64_t group = heads / kv_heads;
  check(dim <= 256, "the kernel supports head_dim up to 256, got " + std::to_string(dim));
  const c10::cuda::CUDAGuard device(q.device());
  const at::Tensor qc = q.contiguous(), kc = keys.contiguous(), vc = values.contiguous();
  const auto f32 = q.options().dtype(at::kFloat);
  const at::Tensor stats = at::empty({kChunkStatistics, kv_heads, n, group}, f32);
  ChunkAttention result{at::empty_like(qc),
                        {stats[0], stats[1], stats[2], stats[3], stats[4], stats[5]},
                        with_probs ? at::empty({kv_heads, group, queries, n}, f32) : at::Tensor()};
  const at::Tensor lse = at::empty({heads, queries}, f32);  // freed here, reused only after the kernels on this stream
  const int rc = launch_chunk_attention(element_type(q.scalar_type()), qc.data_ptr(), kc.data_ptr(), vc.data_ptr(),
                                        result.output.data_ptr(), stats.data_ptr<float>(),
                                        with_probs ? result.probs.data_ptr<float>() : nullptr, lse.data_ptr<float>(),
                                        queries, n, heads, kv_heads, dim, c10::cuda::getCurrentCUDAStream().stream());
  check(rc == 0, "the kernel failed for q " + shape_of(q) + ", keys " + shape_of(keys) + ": " +
                     cudaGetErrorString(static_cast<cudaError_t>(rc)));
  return result;
}
#endif

}  // namespace

ChunkAttention chunk_attention_reference(const at::Tensor& q, const at::Tensor& keys, const at::Tensor& values) {
  const int64_t t = q.size(0), heads = q.size(1), dim = q.size(2), kv = keys.size(0), old = keys.size(1) - t;
  const auto i64 = at::TensorOptions().dtype(at::kLong).device(q.device());
  // [Hkv, G, T, S] scores; query i sees every older entry and new keys 0..i.
  const at::Tensor qg = q.to(at::kFloat).permute({1, 0, 2}).reshape({kv, heads / kv, t, dim});
  at::Tensor scores = at::matmul(qg, keys.to(at::kFloat).unsqueeze(1).transpose(2, 3)) /
                      std::sqrt(static_cast<double>(dim));
  const at::Tensor future = at::arange(t, i64).unsqueeze(0) > at::arange(t, i64).unsqueeze(1);
  scores.slice(3, old).masked_fill_(future, -std::numeric_limits<float>::infinity());
  const at::Tensor probs = at::softmax(scores, -1);
  const at::Tensor out = at::matmul(probs, values.to(at::kFloat).unsqueeze(1));  // [Hkv, G, T, d]
  return {out.reshape({heads, t, dim}).permute({1, 0, 2}).to(q.scalar_type()), chunk_statistics(probs), probs};
}

ChunkAttention chunk_attention_op(const at::Tensor& q, const at::Tensor& keys, const at::Tensor& values,
                                  bool with_probs) {
  check_inputs(q, keys, values);
  if (q.is_cpu()) {
    ChunkAttention result = chunk_attention_reference(q, keys, values);
    if (!with_probs) result.probs = at::Tensor();
    return result;
  }
#ifdef FORESIGHT_WITH_CUDA
  return on_cuda(q, keys, values, with_probs);
#else
  no_cuda_kernels("chunk_attention");
#endif
}

}  // namespace foresight
