// foresight-kernels bench block_attention: the recorder's attention with block means (§3).
#include <ATen/ATen.h>
#include <torch/cuda.h>

#include <string>
#include <vector>

#include "kernels/bench_table.h"
#include "kernels/block_attention_cpu.h"
#include "kernels/block_attention_op.h"
#include "kernels/kernel_benches.h"

namespace foresight {

namespace {

struct Sizes {
  int64_t len, heads, kv_heads, dim, block;
};

// Useful work of one call, pass 2's recomputed scores not counted: Q K^T and P V over the causal
// (query, key) pairs, 2 d FLOPs each per query head: flops = 4 d H L (L + 1) / 2. Bytes: what
// must move at least: q, k, v read and the output written once in bf16 (2 bytes each),
// 2 (2 L H d + 2 L Hkv d), and the float32 block means, 4 Hkv L ceil(L / W).
BenchWork work(const Sizes& s) {
  const double l = static_cast<double>(s.len), n_blocks = static_cast<double>((s.len + s.block - 1) / s.block);
  return {"L " + std::to_string(s.len) + ", H " + std::to_string(s.heads) + "/" + std::to_string(s.kv_heads) + ", d " +
              std::to_string(s.dim) + ", W " + std::to_string(s.block) + ", bf16",
          4.0 * s.dim * s.heads * l * (l + 1) / 2,
          2.0 * (2 * l * s.heads * s.dim + 2 * l * s.kv_heads * s.dim) + 4.0 * s.kv_heads * l * n_blocks};
}

}  // namespace

void bench_block_attention(bool quick) {
  const Sizes s = quick ? Sizes{512, 8, 2, 64, 64} : Sizes{8192, 32, 8, 128, 256};
  at::manual_seed(0);
  const auto bf16 = at::TensorOptions().dtype(at::kBFloat16);
  const at::Tensor q = at::randn({s.len, s.heads, s.dim}, bf16);
  const at::Tensor k = at::randn({s.len, s.kv_heads, s.dim}, bf16);
  const at::Tensor v = at::randn({s.len, s.kv_heads, s.dim}, bf16);

  std::vector<BenchRow> rows;
  // At the realistic sizes the CPU takes seconds per call: one warm-up, two timed calls.
  rows.push_back({"cpu reference", time_call([&] { block_attention(q, k, v, s.block, RecorderTiles{}); }, {}, 1,
                                             quick ? 3 : 2), ""});
  if (!at::hasCUDA()) {
    rows.push_back({"libtorch ops (cuda)", -1, "no GPU"});
    rows.push_back({"kernel (cuda)", -1, "no GPU"});
  } else {
    const at::Tensor qc = q.cuda(), kc = k.cuda(), vc = v.cuda();
    const auto sync = [] { torch::cuda::synchronize(); };
    // The recorder's tiled LibTorch implementation on the GPU: what recording ran before the kernel.
    rows.push_back({"libtorch ops (cuda)",
                    time_call([&] { block_attention(qc, kc, vc, s.block, RecorderTiles{}); }, sync, 1, 5), ""});
#ifdef FORESIGHT_WITH_CUDA
    rows.push_back({"kernel (cuda)", time_call([&] { block_attention_op(qc, kc, vc, s.block); }, sync, 2, 10), ""});
#else
    rows.push_back({"kernel (cuda)", -1, "this build has no CUDA kernels"});
#endif
  }
  print_bench(work(s), rows);
}

}  // namespace foresight
