#include "model/attention.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <sstream>

namespace foresight {
namespace {

// The textbook definition, written independently: repeat KV heads per group, scores, explicit
// bottom-right causal mask, float64 softmax.
at::Tensor naive_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  const int64_t t = q.size(0), s = k.size(0), g = q.size(1) / k.size(1);
  const at::Tensor q64 = q.to(at::kDouble).transpose(0, 1);                         // [H, T, d]
  const at::Tensor k64 = k.to(at::kDouble).repeat_interleave(g, 1).transpose(0, 1);  // [H, S, d]
  const at::Tensor v64 = v.to(at::kDouble).repeat_interleave(g, 1).transpose(0, 1);
  at::Tensor scores = at::matmul(q64, k64.transpose(1, 2)) / std::sqrt(static_cast<double>(q.size(2)));
  for (int64_t i = 0; i < t; ++i) {
    for (int64_t j = s - t + i + 1; j < s; ++j) scores.select(1, i).select(1, j).fill_(-INFINITY);
  }
  return at::matmul(at::softmax(scores, -1), v64).transpose(0, 1).to(q.scalar_type());
}

struct Shape {
  int64_t t, s, heads, kv_heads, dim;
};

class CausalAttention : public ::testing::TestWithParam<Shape> {};

TEST_P(CausalAttention, MatchesNaiveSoftmax) {
  const Shape p = GetParam();
  at::manual_seed(7);
  const at::Tensor q = at::randn({p.t, p.heads, p.dim}) * 2;
  const at::Tensor k = at::randn({p.s, p.kv_heads, p.dim}) * 2;
  const at::Tensor v = at::randn({p.s, p.kv_heads, p.dim});
  const at::Tensor got = causal_attention(q, k, v);
  ASSERT_EQ(got.sizes(), q.sizes());
  EXPECT_LT((got - naive_attention(q, k, v)).abs().max().item<double>(), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Shapes, CausalAttention,
                         ::testing::Values(Shape{9, 9, 4, 4, 8},    // full sequence, G = 1
                                           Shape{9, 9, 6, 2, 8},    // full sequence, G = 3
                                           Shape{1, 13, 4, 1, 16},  // one decoding step, G = 4
                                           Shape{5, 12, 4, 2, 8},   // a chunk over a cache
                                           Shape{1, 1, 2, 1, 4}),
                         [](const auto& info) {
                           // A stream, not "T" + std::to_string(..): GCC 12 inlines that operator+
                           // here into a memcpy it then warns about (-Wstringop-overflow, a false positive).
                           const Shape& p = info.param;
                           std::ostringstream name;
                           name << "T" << p.t << "_S" << p.s << "_G" << p.heads / p.kv_heads;
                           return name.str();
                         });

}  // namespace
}  // namespace foresight
