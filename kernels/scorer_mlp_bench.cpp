// foresight-kernels bench scorer_mlp: one layer's learned-scorer forward over the candidates of a
// batch of rollouts, from their K, V and statistics.
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <torch/cuda.h>

#include <cmath>
#include <cstdio>
#include <vector>

#include "kernels/bench_table.h"
#include "kernels/kernel_benches.h"
#include "kernels/scorer_mlp_op.h"

namespace foresight {

namespace {

struct Inputs {
  at::Tensor keys, values, stats;
  ScorerMlpWeights weights;
};

Inputs random_inputs(int64_t rows, int64_t heads, int64_t b, int64_t d, int64_t g, int64_t hidden) {
  const int64_t features = 2 * d + 8 * g;
  const double bound = 1.0 / std::sqrt(static_cast<double>(features));
  return {at::randn({rows, b, d}).to(at::kBFloat16), at::randn({rows, b, d}).to(at::kBFloat16), at::rand({rows, b, 8, g}),
          {at::empty({heads, features, hidden}).uniform_(-bound, bound), at::empty({heads, hidden}).uniform_(-bound, bound),
           at::empty({heads, hidden, 1}).uniform_(-0.25, 0.25), at::empty({heads, 1}).uniform_(-0.25, 0.25)}};
}

Inputs to_cuda(const Inputs& x) {
  const ScorerMlpWeights& w = x.weights;
  return {x.keys.cuda(), x.values.cuda(), x.stats.cuda(),
          {w.fc1_weight.cuda(), w.fc1_bias.cuda(), w.fc2_weight.cuda(), w.fc2_bias.cuda()}};
}

}  // namespace

void bench_scorer_mlp(bool quick) {
  const int64_t rollouts = quick ? 1 : 8, heads = quick ? 2 : 8, b = quick ? 64 : 1024, d = quick ? 16 : 128,
                g = quick ? 2 : 4, hidden = 16, rows = rollouts * heads, features = 2 * d + 8 * g;
  const int warmup = quick ? 1 : 3, calls = quick ? 3 : 20;
  const c10::NoGradGuard no_grad;
  at::manual_seed(0);
  const Inputs cpu = random_inputs(rows, heads, b, d, g, hidden);

  char description[160];
  std::snprintf(description, sizeof description,
                "%lld rollouts x %lld KV heads, B %lld, d %lld, G %lld (F %lld), hidden %lld, bf16 K/V",
                static_cast<long long>(rollouts), static_cast<long long>(heads), static_cast<long long>(b),
                static_cast<long long>(d), static_cast<long long>(g), static_cast<long long>(features),
                static_cast<long long>(hidden));
  // FLOPs: the multiply-adds of fc1 (F x hidden) and fc2 (hidden) per candidate; biases and GELU
  // are not counted. Bytes: K and V (bf16) and the statistics (float32) read once, the weights
  // read once, the scores written.
  const double candidates = static_cast<double>(rows * b);
  const BenchWork work{description, candidates * 2.0 * (features * hidden + hidden),
                       candidates * (2.0 * d * 2 + 8.0 * g * 4 + 4) + heads * (features * hidden + 2.0 * hidden + 1) * 4};

  std::vector<BenchRow> out;
  out.push_back({"cpu reference",
                 time_call([&] { scorer_mlp_reference(cpu.keys, cpu.values, cpu.stats, cpu.weights); }, {}, warmup, calls),
                 ""});
  if (!at::hasCUDA()) {
    out.push_back({"libtorch ops (cuda)", -1, "no GPU"});
    out.push_back({"kernel (cuda)", -1, "no GPU"});
  } else {
    const Inputs gpu = to_cuda(cpu);
    const auto sync = [] { torch::cuda::synchronize(); };
    out.push_back({"libtorch ops (cuda)",
                   time_call([&] { scorer_mlp_reference(gpu.keys, gpu.values, gpu.stats, gpu.weights); }, sync, warmup, calls),
                   ""});
#ifdef FORESIGHT_WITH_CUDA
    out.push_back({"kernel (cuda)",
                   time_call([&] { scorer_mlp(gpu.keys, gpu.values, gpu.stats, gpu.weights); }, sync, warmup, calls), ""});
#else
    out.push_back({"kernel (cuda)", -1, "kernels not built (no nvcc at configure time)"});
#endif
  }
  print_bench(work, out);
}

}  // namespace foresight
