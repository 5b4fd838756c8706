#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "common/error.h"
#include "policy/scorer.h"
#include "sft/ranking_loss.h"
#include "train/optimizer.h"

namespace foresight {
namespace {

// DESIGN.md §5 pair by pair: mean over (i, j) with o_i > o_j of max(0, margin - (s_i - s_j)).
at::Tensor brute_force_hinge(const at::Tensor& s, const at::Tensor& o, double margin) {
  at::Tensor total = at::zeros({}, at::kDouble);
  int pairs = 0;
  for (int64_t i = 0; i < s.size(0); ++i) {
    for (int64_t j = 0; j < s.size(0); ++j) {
      if (o[i].item<double>() > o[j].item<double>()) {
        total = total + at::relu(margin - (s[i] - s[j]));
        ++pairs;
      }
    }
  }
  return pairs ? total / pairs : total;
}

TEST(RankingLoss, ValueAndGradientMatchThePairByPairLoop) {
  at::manual_seed(4);
  const at::Tensor oracle = at::tensor({0.3, 0.1, 0.3, -0.2, 0.05, 0.0}, at::kDouble).unsqueeze(0).repeat({3, 1});
  oracle[2].fill_(0.7);  // a row with no ordered pair
  const at::Tensor base = (at::randn({3, 6}, at::kDouble) * 0.01);
  const at::Tensor s1 = base.clone().requires_grad_(true);
  const RankingLoss l = pairwise_hinge(s1, oracle, 0.01);
  (l.row_loss * l.has_pairs).sum().backward();
  EXPECT_TRUE(l.has_pairs[0].item<bool>() && l.has_pairs[1].item<bool>() && !l.has_pairs[2].item<bool>());
  const at::Tensor s2 = base.clone().requires_grad_(true);
  at::Tensor want = at::zeros({}, at::kDouble);
  for (int64_t r = 0; r < 2; ++r) {
    const at::Tensor row = brute_force_hinge(s2[r], oracle[r], 0.01);
    EXPECT_NEAR(l.row_loss[r].item<double>(), row.item<double>(), 1e-12);
    want = want + row;
  }
  want.backward();
  EXPECT_TRUE(at::allclose(s1.grad(), s2.grad(), 1e-12, 1e-12));
  EXPECT_GT(s1.grad().abs().sum().item<double>(), 0);
}

TEST(RankingLoss, GoldenOverlapCountsSharedDrops) {
  const at::Tensor scores = at::tensor({5.f, 1.f, 4.f, 0.f, 3.f, 2.f}).unsqueeze(0);  // top-2: slots 0, 2
  EXPECT_FLOAT_EQ(golden_overlap(scores, at::tensor({int64_t{2}, int64_t{5}}).unsqueeze(0)).item<float>(), 0.5f);
  EXPECT_FLOAT_EQ(golden_overlap(scores, at::tensor({int64_t{0}, int64_t{2}}).unsqueeze(0)).item<float>(), 1.0f);
}

TEST(Adam, FirstStepsMatchTheClosedForm) {
  at::Tensor p = at::tensor({1.0, -2.0}, at::kDouble).requires_grad_(true);
  Adam adam({p});
  p.mutable_grad() = at::tensor({0.5, -4.0}, at::kDouble);
  adam.step(0.1);  // step 1: m_hat = g, v_hat = g^2, so the update is lr * g / (|g| + eps)
  EXPECT_NEAR(p[0].item<double>(), 1.0 - 0.1 * 0.5 / (0.5 + 1e-8), 1e-12);
  EXPECT_NEAR(p[1].item<double>(), -2.0 + 0.1 * 4.0 / (4.0 + 1e-8), 1e-12);
  p.mutable_grad() = at::tensor({1.0, 0.0}, at::kDouble);
  adam.step(0.1);  // step 2, by hand
  const double m = (0.9 * 0.1 * 0.5 + 0.1 * 1.0) / (1 - 0.81);
  const double v = (0.999 * 0.001 * 0.25 + 0.001 * 1.0) / (1 - 0.999 * 0.999);
  EXPECT_NEAR(p[0].item<double>(), 1.0 - 0.1 * 0.5 / (0.5 + 1e-8) - 0.1 * m / (std::sqrt(v) + 1e-8), 1e-9);
}

TEST(Schedule, WarmupThenCosine) {
  EXPECT_DOUBLE_EQ(scheduled_lr(1.0, 0, 10, 110, "cosine"), 0.0);
  EXPECT_DOUBLE_EQ(scheduled_lr(1.0, 5, 10, 110, "cosine"), 0.5);
  EXPECT_DOUBLE_EQ(scheduled_lr(1.0, 10, 10, 110, "cosine"), 1.0);
  EXPECT_NEAR(scheduled_lr(1.0, 60, 10, 110, "cosine"), 0.5, 1e-12);
  EXPECT_NEAR(scheduled_lr(1.0, 110, 10, 110, "cosine"), 0.0, 1e-12);
  EXPECT_DOUBLE_EQ(scheduled_lr(1.0, 60, 10, 110, "constant"), 1.0);
}

TEST(ClipGradNorm, ScalesToTheLimit) {
  at::Tensor p = at::zeros({2}, at::kDouble).requires_grad_(true);
  p.mutable_grad() = at::tensor({3.0, 4.0}, at::kDouble);
  EXPECT_DOUBLE_EQ(clip_grad_norm({p}, 1.0), 5.0);
  EXPECT_NEAR(p.grad().norm().item<double>(), 1.0, 1e-6);
}

ScorerSpec spec(int64_t budget = 16) {
  return {{"qwen3", 2, 4, 2, 8, "abc"}, 2, FeatureSet::Recency, {budget, 4}, 16};
}

TEST(LearnedScorer, MatchesTheMlpWrittenOutAndRoundTrips) {
  LearnedScorer scorer(spec(), 3);
  at::manual_seed(1);
  const at::Tensor x = at::randn({2, 16, scorer.spec().input_dim()});
  const auto params = scorer.named_parameters();
  const at::Tensor w1 = params[4].second, b1 = params[5].second, w2 = params[6].second, b2 = params[7].second;  // layer 1
  for (int64_t k = 0; k < 2; ++k) {
    const at::Tensor h = at::matmul(x[k], w1[k]) + b1[k];
    const at::Tensor gelu = 0.5 * h * (1 + at::erf(h / std::sqrt(2.0)));
    EXPECT_TRUE(at::allclose(scorer.forward(1, x)[k], (at::matmul(gelu, w2[k]) + b2[k]).squeeze(-1), 1e-5, 1e-6));
  }
  const std::string dir = (std::filesystem::temp_directory_path() / "foresight_scorer_ckpt").string();
  std::filesystem::remove_all(dir);
  scorer.save(dir, R"({"stage": "test"})");
  LearnedScorer back = LearnedScorer::load(dir, spec());
  EXPECT_TRUE(at::equal(back.forward(1, x), scorer.forward(1, x)));
  const ScorerSpec read = LearnedScorer::read_spec(dir);
  EXPECT_EQ(read.base_model, spec().base_model);
  EXPECT_EQ(read.group, spec().group);
  EXPECT_EQ(read.features, spec().features);
  EXPECT_EQ(read.schedule.budget, spec().schedule.budget);
  EXPECT_EQ(read.schedule.interval, spec().schedule.interval);
  EXPECT_EQ(LearnedScorer::read_provenance(dir), R"({"stage":"test"})");

  ScorerSpec other_model = spec();
  other_model.base_model.config_sha256 = "def";
  EXPECT_THROW(LearnedScorer::load(dir, other_model), Error);
  ScorerSpec other_features = spec();
  other_features.features = FeatureSet::Reference;
  EXPECT_THROW(LearnedScorer::load(dir, other_features), Error);
  EXPECT_THROW(LearnedScorer::load(dir, spec(32)), Error);
}

}  // namespace
}  // namespace foresight
