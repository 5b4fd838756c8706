#include "kernels/chunk_attention_op.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "cache/layer_cache.h"
#include "common/error.h"
#include "kernel_test_support.h"
#include "kernels/chunk_attention.cuh"
#include "policy/features.h"

namespace foresight {
namespace {

using test_support::all_written;
using test_support::expect_error;
using test_support::relative_error;
using test_support::tolerance;
using test_support::type_name;

std::vector<at::Tensor> statistics(const ChunkStatistics& s) { return {s.max, s.min, s.sum, s.sum16, s.sum8, s.sum32}; }

struct Chunk {
  at::Tensor q, keys, values;  // [T, H, d]; [Hkv, S, d] twice
};

Chunk random_chunk(int64_t t, int64_t n, int64_t heads, int64_t kv_heads, int64_t dim, at::ScalarType type) {
  return {(at::randn({t, heads, dim}) * 1.5).to(type), (at::randn({kv_heads, n, dim}) * 1.5).to(type),
          at::randn({kv_heads, n, dim}).to(type)};
}

// The CPU path against independent computations: the output against SDPA with the chunk's mask,
// the probabilities and every statistic against plain loops in double precision.
TEST(KernelChunkAttention, OnCpuMatchesSdpaAndLoopedStatistics) {
  at::manual_seed(5);
  const int64_t t = 20, n = 60, heads = 6, kv = 2, g = heads / kv, dim = 8;
  const Chunk c = random_chunk(t, n, heads, kv, dim, at::kFloat);
  const ChunkAttention got = chunk_attention_op(c.q, c.keys, c.values, true);
  EXPECT_FALSE(chunk_attention_op(c.q, c.keys, c.values, false).probs.defined());

  // Query i sees keys 0 .. n - t + i.
  const at::Tensor visible = at::arange(n).unsqueeze(0) <= (at::arange(t) + (n - t)).unsqueeze(1);  // [T, S]
  const at::Tensor q = c.q.permute({1, 0, 2});                                                        // [H, T, d]
  const at::Tensor k = c.keys.repeat_interleave(g, 0), v = c.values.repeat_interleave(g, 0);          // [H, S, d]
  const at::Tensor sdpa = at::scaled_dot_product_attention(q, k, v, visible).permute({1, 0, 2});
  EXPECT_LT(relative_error(got.output, sdpa), 1e-5);

  const at::Tensor scores = at::matmul(q.to(at::kDouble), k.to(at::kDouble).transpose(1, 2)) / std::sqrt(double(dim));
  const at::Tensor probs = at::softmax(scores.masked_fill(~visible, -INFINITY), -1);  // [H, T, S]
  EXPECT_LT(relative_error(got.probs.reshape({heads, t, n}), probs), 1e-5);
  const auto p = probs.accessor<double, 3>();
  const std::vector<at::Tensor> stats = statistics(got.stats);  // [Hkv, S, G] each
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t j = 0; j < n; ++j) {
      double mx = -1, mn = 2, sum = 0, last16 = 0, last8 = 0, last32 = 0;
      for (int64_t i = 0; i < t; ++i) {
        mx = std::max(mx, p[h][i][j]);
        mn = std::min(mn, p[h][i][j]);
        sum += p[h][i][j];
        if (i >= t - 16) last16 += p[h][i][j];
        if (i >= t - 8) last8 += p[h][i][j];
        if (i >= t - 32) last32 += p[h][i][j];
      }
      const double want[] = {mx, mn, sum, last16, last8, last32};
      for (std::size_t s = 0; s < stats.size(); ++s) {
        EXPECT_NEAR(stats[s][h / g][j][h % g].item<double>(), want[s], 1e-6) << "statistic " << s << " head " << h << " key " << j;
      }
    }
  }
}

TEST(KernelChunkAttention, RejectsBadShapesDtypesAndDevices) {
  const Chunk c = random_chunk(4, 12, 4, 2, 8, at::kFloat);
  expect_error([&] { chunk_attention_op(c.q[0], c.keys, c.values, false); }, "q must be [T, H, d]");
  expect_error([&] { chunk_attention_op(c.q, c.keys, c.values.slice(1, 0, 8), false); },
               "keys and values must both be [Hkv, S, d]");
  expect_error([&] { chunk_attention_op(c.q, c.keys.slice(2, 0, 4), c.values.slice(2, 0, 4), false); },
               "differ in head_dim");
  expect_error([&] { chunk_attention_op(c.q, c.keys.slice(1, 0, 3), c.values.slice(1, 0, 3), false); },
               "must include the chunk's own 4");
  expect_error([&] { chunk_attention_op(c.q.slice(0, 0, 0), c.keys, c.values, false); }, "is empty");
  expect_error([&] { chunk_attention_op(at::randn({4, 3, 8}), c.keys, c.values, false); },
               "not a multiple of the 2 KV heads");
  expect_error([&] { chunk_attention_op(c.q.to(at::kDouble), c.keys.to(at::kDouble), c.values.to(at::kDouble), false); },
               "must be float32, float16 or bfloat16");
  expect_error([&] { chunk_attention_op(c.q, c.keys.to(at::kBFloat16), c.values, false); }, "must share a dtype");
  expect_error([&] { chunk_attention_op(c.q, c.keys, c.values.to(at::kMeta), false); }, "must be on one device");
  expect_error([&] { chunk_attention_op(c.q.to(at::kMeta), c.keys.to(at::kMeta), c.values.to(at::kMeta), false); },
               "runs on CPU or CUDA tensors");
}

// --- on a GPU ----------------------------------------------------------------------------------

struct GpuCase {
  int64_t chunk, cached, heads, kv_heads, dim;
  at::ScalarType type;
};

ElementType element_type(at::ScalarType type) {
  return type == at::kFloat ? ElementType::Float32 : type == at::kHalf ? ElementType::Float16 : ElementType::BFloat16;
}

class KernelChunkAttentionGpu : public ::testing::TestWithParam<GpuCase> {};

TEST_P(KernelChunkAttentionGpu, MatchesTheReferenceAndWritesEveryElement) {
  SKIP_WITHOUT_GPU();
#ifndef FORESIGHT_WITH_CUDA
  GTEST_SKIP() << "this build has no CUDA kernels (nvcc or a CUDA-enabled torch was missing)";
#else
  const GpuCase c = GetParam();
  const int64_t n = c.cached + c.chunk, group = c.heads / c.kv_heads;
  at::manual_seed(n * 7 + c.dim);
  const Chunk x = random_chunk(c.chunk, n, c.heads, c.kv_heads, c.dim, c.type);
  // The ground truth: the reference on the CPU from the same rounded inputs, output in float32.
  const ChunkAttention want =
      chunk_attention_reference(x.q.to(at::kFloat), x.keys.to(at::kFloat), x.values.to(at::kFloat));
  const at::Tensor q = x.q.cuda(), keys = x.keys.cuda(), values = x.values.cuda();

  const ChunkAttention got = chunk_attention_op(q, keys, values, true);
  ASSERT_EQ(got.output.sizes(), x.q.sizes());
  ASSERT_EQ(got.output.scalar_type(), c.type);
  EXPECT_LT(relative_error(got.output, want.output), tolerance(c.type));
  EXPECT_LT(relative_error(got.probs, want.probs), tolerance(c.type));
  const std::vector<at::Tensor> g = statistics(got.stats), w = statistics(want.stats);
  for (std::size_t i = 0; i < g.size(); ++i) {
    ASSERT_EQ(g[i].sizes(), w[i].sizes()) << "statistic " << i;
    EXPECT_LT(relative_error(g[i], w[i]), tolerance(c.type)) << "statistic " << i;
  }
  // Without the probabilities, the same statistics (one deterministic pass, no atomics).
  const ChunkAttention lean = chunk_attention_op(q, keys, values, false);
  EXPECT_FALSE(lean.probs.defined());
  const std::vector<at::Tensor> l = statistics(lean.stats);
  for (std::size_t i = 0; i < l.size(); ++i) EXPECT_TRUE(at::equal(l[i], g[i])) << "statistic " << i;

  // The launcher on outputs poisoned with NaN: every element must be written.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const auto f32 = q.options().dtype(at::kFloat);
  const at::Tensor out = at::full(q.sizes(), nan, q.options());
  const at::Tensor stats = at::full({kChunkStatistics, c.kv_heads, n, group}, nan, f32);
  const at::Tensor probs = at::full({c.kv_heads, group, c.chunk, n}, nan, f32);
  const at::Tensor lse = at::full({c.heads, c.chunk}, nan, f32);
  ASSERT_EQ(launch_chunk_attention(element_type(c.type), q.data_ptr(), keys.data_ptr(), values.data_ptr(),
                                   out.data_ptr(), stats.data_ptr<float>(), probs.data_ptr<float>(),
                                   lse.data_ptr<float>(), c.chunk, n, c.heads, c.kv_heads, c.dim,
                                   /*default stream=*/nullptr),
            0);
  for (const at::Tensor& t : {out, stats, probs, lse}) EXPECT_TRUE(all_written(t));
  EXPECT_TRUE(at::equal(out, got.output));
  EXPECT_TRUE(at::equal(probs, got.probs));
  for (int64_t i = 0; i < kChunkStatistics; ++i) EXPECT_TRUE(at::equal(stats[i], g[i])) << "statistic " << i;
#endif
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, KernelChunkAttentionGpu,
    ::testing::Values(GpuCase{2, 8, 4, 4, 64, at::kFloat},          // W = 2, G = 1
                      GpuCase{4, 16, 6, 2, 40, at::kHalf},          // W = 4, G = 3, head_dim not a multiple of 16
                      GpuCase{20, 40, 8, 2, 16, at::kFloat},        // last-8/16 sums differ from the sum, last-32 not
                      GpuCase{70, 130, 8, 1, 128, at::kBFloat16},   // G = 8, partial query and key tiles
                      GpuCase{33, 0, 4, 2, 256, at::kFloat},        // the initial chunk: no cached keys
                      GpuCase{256, 1024, 32, 8, 128, at::kBFloat16}),  // the realistic sizes
    [](const auto& info) {
      const GpuCase& c = info.param;
      std::ostringstream name;
      name << "T" << c.chunk << "_B" << c.cached << "_H" << c.heads << "_" << c.kv_heads << "_d" << c.dim << "_"
           << type_name(c.type);
      return name.str();
    });

TEST(KernelChunkAttentionGpu, RefusesHeadDimBeyondTheKernel) {
  SKIP_WITHOUT_GPU();
#ifndef FORESIGHT_WITH_CUDA
  GTEST_SKIP() << "this build has no CUDA kernels (nvcc or a CUDA-enabled torch was missing)";
#else
  const at::Tensor q = at::randn({4, 2, 264}).cuda(), keys = at::randn({1, 8, 264}).cuda();
  expect_error([&] { chunk_attention_op(q, keys, keys, false); }, "head_dim up to 256");
#endif
}

// LayerCache on CUDA (the kernel's statistics) against LayerCache on the CPU (the reference),
// across steps with the same drops.
TEST(KernelChunkAttentionGpu, LayerCacheOnCudaMatchesTheCpu) {
  SKIP_WITHOUT_GPU();
#ifndef FORESIGHT_WITH_CUDA
  GTEST_SKIP() << "this build has no CUDA kernels (nvcc or a CUDA-enabled torch was missing)";
#else
  const int64_t heads = 8, kv = 2, d = 32, budget = 48, w = 20;
  at::manual_seed(11);
  LayerCache cpu, gpu;
  auto chunk = [&](int64_t start, int64_t t) {
    const LayerQKV x{at::randn({t, heads, d}) * 1.5, at::randn({t, kv, d}) * 1.5, at::randn({t, kv, d})};
    cpu.begin_chunk(t, true);
    gpu.begin_chunk(t, true);
    const at::Tensor want = cpu.append(x, start);
    const at::Tensor got = gpu.append({x.q.cuda(), x.k.cuda(), x.v.cuda()}, start);
    EXPECT_LT(relative_error(got, want), 1e-5);
  };
  chunk(0, budget);
  int64_t start = budget;
  for (int step = 0; step < 3; ++step, start += w) {
    chunk(start, w);
    for (FeatureSet set : {FeatureSet::Recency, FeatureSet::Reference}) {
      EXPECT_LT(relative_error(candidate_features(gpu.candidates(budget), set), candidate_features(cpu.candidates(budget), set)), 1e-5);
    }
    EXPECT_LT(relative_error(gpu.candidates(budget).attention, cpu.candidates(budget).attention), 1e-5);
    const at::Tensor drops = std::get<0>(at::randperm(budget).slice(0, 0, w).sort()).unsqueeze(0).repeat({kv, 1});
    cpu.evict(drops, budget);
    gpu.evict(drops.cuda(), budget);
    EXPECT_TRUE(at::equal(gpu.positions().cpu(), cpu.positions()));
  }
#endif
}

}  // namespace
}  // namespace foresight
