#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <tuple>

#include "cache/budgeted_runner.h"
#include "policy/scorer.h"
#include "rl/exact_update.h"
#include "rl/rollout.h"
#include "error_text.h"
#include "tiny_model.h"

namespace foresight {
namespace {

using test_support::error_text;
using test_support::random_ids;
using test_support::tiny_model;

constexpr int64_t kGroup = 4;

ScorerSpec spec_of(const Transformer& model, EvictionSchedule schedule) {
  const ModelConfig& c = model.config();
  ModelFingerprint fp{"qwen3", c.num_layers, c.num_heads, c.num_kv_heads, c.head_dim, "test"};
  return {fp, c.group_size(), FeatureSet::Recency, schedule};
}

std::vector<at::Generator> generators(int64_t first, int64_t n) {
  std::vector<at::Generator> out;
  for (int64_t i = 0; i < n; ++i) out.push_back(at::make_generator<at::CPUGeneratorImpl>(first + i));
  return out;
}

double max_diff(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

// Rollout `got` drew what `want` drew, with the same NLL and log-probabilities up to rounding.
void expect_same_rollout(const Rollout& got, const Rollout& want, const std::string& what) {
  ASSERT_TRUE(at::equal(got.drop_slots, want.drop_slots)) << what;
  EXPECT_LT(max_diff(got.nll, want.nll), 1e-5) << what;
  ASSERT_EQ(got.steps.size(), want.steps.size()) << what;
  for (std::size_t l = 0; l < got.steps.size(); ++l) {
    ASSERT_EQ(got.steps[l].size(), want.steps[l].size()) << what;
    for (std::size_t s = 0; s < got.steps[l].size(); ++s) {
      const RolloutStep &a = got.steps[l][s], &b = want.steps[l][s];
      const std::string where = what + " layer " + std::to_string(l) + " step " + std::to_string(s);
      EXPECT_TRUE(at::equal(a.drops.slots, b.drops.slots)) << where;
      EXPECT_LT(max_diff(a.old_logp, b.old_logp), 1e-6) << where;
      EXPECT_LT(max_diff(a.ref_logp, b.ref_logp), 1e-6) << where;
      ASSERT_EQ(a.features.defined(), b.features.defined()) << where;
      if (a.features.defined()) EXPECT_LT(max_diff(a.features, b.features), 1e-5) << where;
    }
  }
}

class BatchedRollouts : public ::testing::TestWithParam<LogprobKind> {};

// G = 4 rollouts of one trace in one batch (the shared prefix run once) are the four rollouts
// sample_rollout draws one by one with the same generators.
TEST_P(BatchedRollouts, EqualFourRolloutsDrawnOneByOne) {
  const Transformer model = tiny_model("batched", 4, 2);
  const auto ids = random_ids(75, 5);  // B 16, W 8: 7 eviction steps, a partial last chunk
  const EvictionSchedule schedule{16, 8};
  LearnedScorer policy(spec_of(model, schedule), 1), reference(spec_of(model, schedule), 2);
  const RolloutOptions options{schedule, FeatureSet::Recency, GetParam(), true};
  const std::vector<Rollout> batched = sample_rollouts(model, ids, options, policy, reference, generators(30, kGroup));
  ASSERT_EQ(batched.size(), static_cast<std::size_t>(kGroup));
  ASSERT_EQ(batched[0].steps[0].size(), 7u);
  ASSERT_EQ(batched[0].nll.size(0), 74);
  for (int64_t g = 0; g < kGroup; ++g) {
    const Rollout alone =
        sample_rollout(model, ids, options, policy, reference, at::make_generator<at::CPUGeneratorImpl>(30 + g));
    expect_same_rollout(batched[static_cast<std::size_t>(g)], alone, "rollout " + std::to_string(g));
  }
  // Independently of the sampler: the plain budgeted runner, forced to a rollout's drops, gives its
  // NLL, so the shared prefix and the branches' NLL are stitched together right.
  for (const Rollout& r : batched) {
    ForcedDrops forced(r.drop_slots);
    EXPECT_LT(max_diff(run_budgeted(model, ids, schedule, forced).nll, r.nll), 1e-5);
  }
  // Each rollout evicts its own slots: the group does not draw one set of drops four times.
  EXPECT_FALSE(at::equal(batched[0].drop_slots, batched[1].drop_slots));
  EXPECT_GT(max_diff(batched[0].nll, batched[1].nll), 1e-4);
}

// Running the shared first B + W tokens once and branching equals every rollout running them: at a
// trace with eviction steps, and one that ends within the shared prefix (no eviction at all).
TEST_P(BatchedRollouts, SharingThePrefixEqualsRunningItPerRollout) {
  const Transformer model = tiny_model("batched_prefix", 4, 2);
  const EvictionSchedule schedule{16, 8};
  LearnedScorer policy(spec_of(model, schedule), 1), reference(spec_of(model, schedule), 2);
  RolloutOptions shared{schedule, FeatureSet::Recency, GetParam(), true};
  RolloutOptions unshared = shared;
  unshared.share_prefix = false;
  for (const int64_t length : {75, 20}) {
    const auto ids = random_ids(length, 6);
    const auto a = sample_rollouts(model, ids, shared, policy, reference, generators(40, kGroup));
    const auto b = sample_rollouts(model, ids, unshared, policy, reference, generators(40, kGroup));
    for (std::size_t g = 0; g < a.size(); ++g) {
      expect_same_rollout(a[g], b[g], "length " + std::to_string(length) + " rollout " + std::to_string(g));
    }
    EXPECT_EQ(a[0].steps[0].size(), length == 75 ? 7u : 0u);
  }
}

// The exact update's gradients, taken during a batched pass (one ExactGradient per rollout), give
// the policy the gradients of the same rollouts drawn one by one, once the advantages are applied.
TEST_P(BatchedRollouts, ExactGradientsEqualThoseOfOneByOneRollouts) {
  const Transformer model = tiny_model("batched_exact", 4, 2);
  const auto ids = random_ids(75, 7);
  const EvictionSchedule schedule{16, 8};
  LearnedScorer policy(spec_of(model, schedule), 1), reference(spec_of(model, schedule), 2);
  const RolloutOptions options{schedule, FeatureSet::Recency, GetParam(), false};
  const UpdateOptions update{0.2, 0.05, GetParam()};
  const std::vector<double> advantages{1.2, -0.3, -0.9, 0.5};
  const double weight = 1.0 / kGroup;
  const int64_t steps = schedule.steps(static_cast<int64_t>(ids.size()));
  auto gradients_after = [&](bool batched) {
    for (at::Tensor p : policy.parameters()) p.mutable_grad() = at::zeros_like(p);
    std::vector<std::unique_ptr<ExactGradient>> exact;
    std::vector<RolloutGradient*> raw;
    for (int64_t g = 0; g < kGroup; ++g) {
      exact.push_back(std::make_unique<ExactGradient>(policy, steps, update, weight));
      raw.push_back(exact.back().get());
    }
    if (batched) {
      sample_rollouts(model, ids, options, policy, reference, generators(50, kGroup), raw);
    } else {
      for (int64_t g = 0; g < kGroup; ++g) {
        sample_rollout(model, ids, options, policy, reference, at::make_generator<at::CPUGeneratorImpl>(50 + g),
                       raw[static_cast<std::size_t>(g)]);
      }
    }
    double loss = 0, kl = 0;
    for (int64_t g = 0; g < kGroup; ++g) {
      const UpdateStats s = exact[static_cast<std::size_t>(g)]->apply(advantages[static_cast<std::size_t>(g)]);
      loss += s.loss;
      kl += s.kl;
    }
    std::vector<at::Tensor> grads;
    for (at::Tensor p : policy.parameters()) grads.push_back(p.grad().clone());
    return std::make_tuple(grads, loss, kl);
  };
  const auto [g_batched, loss_batched, kl_batched] = gradients_after(true);
  const auto [g_alone, loss_alone, kl_alone] = gradients_after(false);
  EXPECT_NEAR(loss_batched, loss_alone, 1e-6);
  EXPECT_NEAR(kl_batched, kl_alone, 1e-6);
  EXPECT_GT(kl_alone, 1e-3) << "the two scorers should disagree, so that the KL term counts";
  const auto names = policy.named_parameters();
  // The batched model rounds the features otherwise (measured 1e-7 of the largest entry), so the
  // bound is relative to the gradient's scale, not an absolute one that a larger gradient outgrows.
  double scale = 0;
  for (const at::Tensor& g : g_alone) scale = std::max(scale, g.abs().max().item<double>());
  for (std::size_t i = 0; i < g_alone.size(); ++i) {
    if (!names[i].first.ends_with("fc2.bias")) EXPECT_GT(g_alone[i].abs().max().item<double>(), 1e-4) << names[i].first;
    EXPECT_LT(max_diff(g_batched[i], g_alone[i]), 1e-5 * scale) << names[i].first;
  }
}

INSTANTIATE_TEST_SUITE_P(Logprob, BatchedRollouts, ::testing::Values(LogprobKind::PerDrop, LogprobKind::PlackettLuce));

TEST(BatchedRolloutsInput, RefusesNoGeneratorsAndMismatchedGradients) {
  const Transformer model = tiny_model("batched_refused", 4, 2);
  const auto ids = random_ids(40, 8);
  const EvictionSchedule schedule{16, 8};
  LearnedScorer policy(spec_of(model, schedule), 1), reference(spec_of(model, schedule), 2);
  const RolloutOptions options{schedule, FeatureSet::Recency, LogprobKind::PerDrop, false};
  auto error_of = [&](std::vector<at::Generator> gens, std::vector<RolloutGradient*> gradients) {
    return error_text([&] { sample_rollouts(model, ids, options, policy, reference, std::move(gens), std::move(gradients)); });
  };
  EXPECT_NE(error_of({}, {}).find("no generator given"), std::string::npos);
  EXPECT_NE(error_of(generators(1, 2), {nullptr}).find("1 gradients for 2 rollouts"), std::string::npos);
}

}  // namespace
}  // namespace foresight
