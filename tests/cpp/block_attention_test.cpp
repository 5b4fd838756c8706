#include "kernels/block_attention_cpu.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>
#include <vector>

#include "model/attention.h"

namespace foresight {
namespace {

// DESIGN.md §3 written out in scalar loops, double precision: the full causal softmax P[h, q, j]
// per head, then A[k, j, b] = sum over the group's heads and block b's queries of P / (G * W).
at::Tensor naive_blocks(const at::Tensor& q, const at::Tensor& k, int64_t w) {
  const int64_t len = q.size(0), heads = q.size(1), dim = q.size(2), kv = k.size(1), g = heads / kv;
  const int64_t n_blocks = (len + w - 1) / w;
  const at::Tensor qd = q.to(at::kDouble), kd = k.to(at::kDouble);
  const auto qa = qd.accessor<double, 3>();
  const auto ka = kd.accessor<double, 3>();
  at::Tensor a = at::zeros({kv, len, n_blocks}, at::kDouble);
  auto aa = a.accessor<double, 3>();
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t i = 0; i < len; ++i) {
      std::vector<double> s(static_cast<std::size_t>(i + 1));
      double mx = -1e300, total = 0;
      for (int64_t j = 0; j <= i; ++j) {
        double dot = 0;
        for (int64_t c = 0; c < dim; ++c) dot += qa[i][h][c] * ka[j][h / g][c];
        s[j] = dot / std::sqrt(static_cast<double>(dim));
        mx = std::max(mx, s[j]);
      }
      for (double& x : s) total += (x = std::exp(x - mx));
      for (int64_t j = 0; j <= i; ++j) aa[h / g][j][i / w] += s[j] / total / static_cast<double>(g * w);
    }
  }
  return a;
}

struct Case {
  int64_t len, heads, kv_heads, dim, block, query_tile, key_tile;
};

class BlockAttentionTest : public ::testing::TestWithParam<Case> {};

TEST_P(BlockAttentionTest, MatchesNaiveSoftmaxAndOrdinaryAttention) {
  const Case c = GetParam();
  at::manual_seed(c.len * 31 + c.heads);
  const at::Tensor q = at::randn({c.len, c.heads, c.dim}) * 1.5;
  const at::Tensor k = at::randn({c.len, c.kv_heads, c.dim}) * 1.5;
  const at::Tensor v = at::randn({c.len, c.kv_heads, c.dim});
  const BlockAttention got = block_attention(q, k, v, c.block, {c.query_tile, c.key_tile});
  const at::Tensor want = naive_blocks(q, k, c.block);
  ASSERT_EQ(got.blocks.sizes(), want.sizes());
  const at::Tensor rel = (got.blocks.to(at::kDouble) - want).abs() / (want.abs() + 1e-12);
  EXPECT_LT(rel.max().item<double>(), 1e-5);
  EXPECT_LT((got.output - causal_attention(q, k, v)).abs().max().item<double>(), 1e-5);

  const BlockAttention reference = block_attention_reference(q, k, v, c.block);
  EXPECT_LT(((reference.blocks.to(at::kDouble) - want).abs() / (want.abs() + 1e-12)).max().item<double>(), 1e-5);
  EXPECT_LT((reference.output - got.output).abs().max().item<double>(), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, BlockAttentionTest,
    ::testing::Values(Case{40, 4, 4, 8, 8, 16, 16},   // G = 1, L a multiple of W
                      Case{37, 6, 2, 8, 8, 16, 8},    // G = 3, partial last block
                      Case{33, 4, 1, 16, 4, 10, 7},   // G = 4, tiles not aligned to anything
                      Case{17, 2, 1, 4, 16, 1024, 1024},  // one tile, one partial block
                      Case{64, 8, 2, 8, 16, 16, 64}),
    [](const auto& info) {
      // A stream, not "L" + std::to_string(..): GCC 12 inlines that operator+ here into a memcpy it
      // then warns about (-Wstringop-overflow, a false positive).
      const Case& c = info.param;
      std::ostringstream name;
      name << "L" << c.len << "_G" << c.heads / c.kv_heads << "_W" << c.block << "_tiles" << c.query_tile << "x"
           << c.key_tile;
      return name.str();
    });

}  // namespace
}  // namespace foresight
