// foresight-kernels bench chunk_attention: the budgeted runner's chunk with its statistics (§4).
#include <ATen/ATen.h>
#include <torch/cuda.h>

#include <string>
#include <vector>

#include "kernels/bench_table.h"
#include "kernels/chunk_attention_op.h"
#include "kernels/kernel_benches.h"

namespace foresight {

namespace {

struct Sizes {
  int64_t cached, chunk, heads, kv_heads, dim;
};

// Useful work of one call, pass 2's recomputed scores and the statistics' few FLOPs per
// probability not counted: Q K^T and P V over the visible (query, key) pairs, 2 d FLOPs each per
// query head: flops = 4 d H (T B + T (T + 1) / 2), B cached keys, T = W new ones. Bytes: what must
// move at least: q, keys, values read and the output written once in bf16 (2 bytes each),
// 2 (2 T H d + 2 Hkv S d) with S = B + T, and the six float32 statistics, 4 * 6 Hkv S G. The
// probabilities (4 H T S more) are not counted, so the "+ probs" row reads low on GB/s.
BenchWork work(const Sizes& s) {
  const double t = static_cast<double>(s.chunk), n = static_cast<double>(s.cached + s.chunk);
  return {"B " + std::to_string(s.cached) + " + W " + std::to_string(s.chunk) + ", H " + std::to_string(s.heads) + "/" +
              std::to_string(s.kv_heads) + ", d " + std::to_string(s.dim) + ", bf16",
          4.0 * s.dim * s.heads * (t * s.cached + t * (t + 1) / 2),
          2.0 * (2 * t * s.heads * s.dim + 2 * s.kv_heads * n * s.dim) + 4.0 * 6 * s.heads * n};
}

}  // namespace

void bench_chunk_attention(bool quick) {
  const Sizes s = quick ? Sizes{256, 64, 8, 2, 64} : Sizes{1024, 256, 32, 8, 128};
  at::manual_seed(0);
  const auto bf16 = at::TensorOptions().dtype(at::kBFloat16);
  const int64_t n = s.cached + s.chunk;
  const at::Tensor q = at::randn({s.chunk, s.heads, s.dim}, bf16);
  const at::Tensor keys = at::randn({s.kv_heads, n, s.dim}, bf16);
  const at::Tensor values = at::randn({s.kv_heads, n, s.dim}, bf16);

  std::vector<BenchRow> rows;
  rows.push_back({"cpu reference", time_call([&] { chunk_attention_reference(q, keys, values); }, {}, 1, 3), ""});
  if (!at::hasCUDA()) {
    for (const char* path : {"libtorch ops (cuda)", "kernel (cuda)", "kernel + probs (cuda)"}) {
      rows.push_back({path, -1, "no GPU"});
    }
  } else {
    const at::Tensor qc = q.cuda(), kc = keys.cuda(), vc = values.cuda();
    const auto sync = [] { torch::cuda::synchronize(); };
    // The reference on the GPU: the whole softmax, then the statistics, as LayerCache ran before.
    rows.push_back({"libtorch ops (cuda)", time_call([&] { chunk_attention_reference(qc, kc, vc); }, sync, 2, 10), ""});
#ifdef FORESIGHT_WITH_CUDA
    rows.push_back({"kernel (cuda)", time_call([&] { chunk_attention_op(qc, kc, vc, false); }, sync, 2, 20), ""});
    // What LayerCache asks for: the baselines read the probabilities.
    rows.push_back({"kernel + probs (cuda)", time_call([&] { chunk_attention_op(qc, kc, vc, true); }, sync, 2, 20), ""});
#else
    rows.push_back({"kernel (cuda)", -1, "this build has no CUDA kernels"});
    rows.push_back({"kernel + probs (cuda)", -1, "this build has no CUDA kernels"});
#endif
  }
  print_bench(work(s), rows);
}

}  // namespace foresight
