// foresight-kernels bench select_compact: one eviction step of one layer for a batch of rollouts,
// choosing W of B slots per (rollout, KV head) and compacting K, V, cum, cum_decay and positions.
#include <ATen/ATen.h>
#include <torch/cuda.h>

#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "kernels/bench_table.h"
#include "kernels/kernel_benches.h"
#include "kernels/select_compact_op.h"

namespace foresight {

namespace {

struct Sizes {
  int64_t rollouts, heads, budget, interval, dim, group;
};

CacheEntries random_cache(const Sizes& s, at::Device device) {
  const int64_t rows = s.rollouts * s.heads, entries = s.budget + s.interval;
  const auto f32 = at::TensorOptions().dtype(at::kFloat).device(device);
  return {at::randn({rows, entries, s.dim}, f32).to(at::kBFloat16), at::randn({rows, entries, s.dim}, f32).to(at::kBFloat16),
          at::rand({rows, entries, s.group}, f32), at::rand({rows, entries, s.group}, f32),
          at::arange(rows * entries, f32.dtype(at::kLong)).view({rows, entries})};
}

// The least traffic of one call: the scores read and the slots written by the selection, then the
// slots read and every survivor right of a row's first drop read and written once by the
// compaction (entries left of it stay put). A survivor is K and V (bf16), cum and cum_decay
// (float32 x G) and its position (int64).
double least_bytes(const Sizes& s, const at::Tensor& slots) {
  const int64_t rows = s.rollouts * s.heads, kept = s.budget;  // S - W = B
  const double entry = 2.0 * s.dim * 2 + 2.0 * s.group * 4 + 8;
  const double moved = static_cast<double>((kept - std::get<0>(slots.min(1))).sum().item<int64_t>());
  return rows * s.budget * 4.0 + 2 * rows * s.interval * 8.0 + 2 * moved * entry;
}

void bench_rule(const Sizes& s, std::optional<uint64_t> seed, bool quick) {
  const int warmup = quick ? 1 : 3, calls = quick ? 3 : 20;
  const int64_t rows = s.rollouts * s.heads, w = s.interval;
  at::manual_seed(0);
  const at::Tensor scores = at::randn({rows, s.budget});
  const CacheEntries cpu = random_cache(s, at::kCPU);
  const at::Tensor cpu_slots = select_drops_reference(scores, w, seed);  // for the byte count
  char description[160];
  std::snprintf(description, sizeof description, "%s: %lld rollouts x %lld KV heads, B %lld, W %lld, d %lld, G %lld, bf16",
                seed ? "sampled" : "greedy", static_cast<long long>(s.rollouts), static_cast<long long>(s.heads),
                static_cast<long long>(s.budget), static_cast<long long>(w), static_cast<long long>(s.dim),
                static_cast<long long>(s.group));
  const BenchWork work{description, 0.0, least_bytes(s, cpu_slots)};

  // Every call compacts the same cache again: the work per call is the same, only the contents shift.
  std::vector<BenchRow> rows_out;
  rows_out.push_back({"cpu reference", time_call([&] { compact_entries_reference(cpu, select_drops_reference(scores, w, seed), s.budget); },
                                                  {}, warmup, calls), ""});
  if (!at::hasCUDA()) {
    rows_out.push_back({"libtorch ops (cuda)", -1, "no GPU"});
    rows_out.push_back({"kernel (cuda)", -1, "no GPU"});
  } else {
    const at::Tensor gpu_scores = scores.cuda();
    const CacheEntries gpu = random_cache(s, at::kCUDA);
    const auto sync = [] { torch::cuda::synchronize(); };
    rows_out.push_back({"libtorch ops (cuda)",
                        time_call([&] { compact_entries_reference(gpu, select_drops_reference(gpu_scores, w, seed), s.budget); },
                                  sync, warmup, calls),
                        ""});
#ifdef FORESIGHT_WITH_CUDA
    rows_out.push_back({"kernel (cuda)", time_call([&] { select_compact(gpu_scores, w, seed, gpu); }, sync, warmup, calls), ""});
#else
    rows_out.push_back({"kernel (cuda)", -1, "kernels not built (no nvcc at configure time)"});
#endif
  }
  print_bench(work, rows_out);
}

}  // namespace

void bench_select_compact(bool quick) {
  const Sizes sizes = quick ? Sizes{2, 2, 64, 16, 32, 2} : Sizes{8, 8, 1024, 256, 128, 4};
  bench_rule(sizes, std::nullopt, quick);
  bench_rule(sizes, 1234, quick);
}

}  // namespace foresight
