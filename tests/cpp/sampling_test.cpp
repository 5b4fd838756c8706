#include "model/sampling.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cmath>

#include "common/error.h"

namespace foresight {
namespace {

TEST(Sampling, GreedyAndTinyTopPPickTheArgmax) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(0);
  const at::Tensor logits = at::tensor({0.1f, 2.0f, 1.9f, -1.0f});
  EXPECT_EQ(sample_token(logits, {0.0, 1.0}, gen), 1);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(sample_token(logits, {1.0, 0.01}, gen), 1);
}

TEST(Sampling, FrequenciesFollowTheTemperedSoftmaxInsideTheNucleus) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(123);
  const at::Tensor logits = at::tensor({2.0f, 1.0f, 0.0f, -3.0f});
  // At temperature 0.5, probs are ~[0.867, 0.117, 0.016, 0.00004]; top_p 0.95 keeps tokens 0 and 1.
  const SamplingOptions opts{0.5, 0.95};
  std::vector<int> counts(4, 0);
  const int n = 20000;
  for (int i = 0; i < n; ++i) ++counts[static_cast<std::size_t>(sample_token(logits, opts, gen))];
  const double p0 = std::exp(4.0) / (std::exp(4.0) + std::exp(2.0));
  EXPECT_NEAR(counts[0] / static_cast<double>(n), p0, 0.01);
  EXPECT_EQ(counts[2] + counts[3], 0);
}

TEST(Sampling, NegativeOrNaNTemperatureIsAnErrorNotGreedy) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(0);
  const at::Tensor logits = at::tensor({0.1f, 2.0f, 1.9f, -1.0f});
  EXPECT_THROW(sample_token(logits, {-0.7, 1.0}, gen), Error);
  EXPECT_THROW(sample_token(logits, {std::nan(""), 1.0}, gen), Error);
}

}  // namespace
}  // namespace foresight
