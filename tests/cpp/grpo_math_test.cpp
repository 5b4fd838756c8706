#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cmath>

#include "cache/rollout_reward.h"
#include "kernels/drop_selection.h"
#include "rl/grpo_loss.h"

namespace foresight {
namespace {

TEST(Reward, HandComputedSpikePenalty) {
  // 10 positions; offset 4 scores t = 4..9 (n = 6); floor(0.2 * 6) = 1 excluded: t = 7 (entropy 9).
  const at::Tensor full = at::tensor({0., 0., 0., 0., 1.0, 1.0, 1.0, 1.0, 1.0, 1.0}, at::kDouble);
  const at::Tensor entropy = at::tensor({9., 9., 9., 9., 1.0, 2.0, 3.0, 9.0, 0.5, 2.5}, at::kDouble);
  const at::Tensor evict = at::tensor({5., 5., 5., 5., 3.0, 1.2, 2.6, 9.0, 1.0, 1.4}, at::kDouble);
  // d over t = 4, 5, 6, 8, 9: -2.0, -0.2, -1.6, 0.0, -0.4 -> spikes (< -1.5): -2.0, -1.6
  const RolloutReward r = rollout_reward(full, entropy, evict, 4, {});
  EXPECT_EQ(r.scored, 5);
  EXPECT_NEAR(r.reward, -(4.0 + 2.56) / 5, 1e-12);
  EXPECT_NEAR(r.spike_rate, 2.0 / 5, 1e-12);
  EXPECT_NEAR(r.mean_nll_increase, (2.0 + 0.2 + 1.6 + 0.0 + 0.4) / 5, 1e-12);
  RewardOptions looser;
  looser.threshold = 1.7;
  looser.kind = "spike";
  EXPECT_NEAR(rollout_reward(full, entropy, evict, 4, looser).reward, -4.0 / 5, 1e-12);
  RewardOptions mean_nll;
  mean_nll.kind = "mean_nll";
  EXPECT_NEAR(rollout_reward(full, entropy, evict, 4, mean_nll).reward, -(4.2 / 5), 1e-12);
  RewardOptions none_excluded;
  none_excluded.exclude_fraction = 0.0;
  EXPECT_EQ(rollout_reward(full, entropy, evict, 4, none_excluded).scored, 6);
}

TEST(Reward, GroupAdvantagesUsePopulationStd) {
  const at::Tensor a = group_advantages(at::tensor({1.0, 2.0, 3.0, 6.0}, at::kDouble));
  const double mean = 3.0, std = std::sqrt((4.0 + 1.0 + 0.0 + 9.0) / 4);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(a[i].item<double>(), ((i == 3 ? 6.0 : i + 1.0) - mean) / (std + 1e-8), 1e-12);
  EXPECT_NEAR(group_advantages(at::tensor({0.5, 0.5}, at::kDouble)).abs().max().item<double>(), 0.0, 1e-12);
}

TEST(GrpoLoss, SurrogateAndKlMatchTheFormulasAndTheirGradients) {
  const at::Tensor old_logp = at::tensor({-1.0, -2.0, -0.5, -3.0}, at::kDouble);
  const at::Tensor ref_logp = at::tensor({-1.2, -1.5, -0.4, -2.0}, at::kDouble);
  const at::Tensor start = at::tensor({-0.7, -2.1, -0.9, -2.95}, at::kDouble);  // ratios 1.35, 0.90, 0.67, 1.05
  for (const double adv : {1.5, -0.8}) {
    const at::Tensor logp = start.clone().requires_grad_(true);
    const GrpoTerms t = grpo_terms(logp, old_logp, ref_logp, adv, 0.2, 0.05);
    t.loss.backward();
    double loss = 0, kl = 0;
    std::vector<double> grad(4);
    for (int i = 0; i < 4; ++i) {
      const double ratio = std::exp(start[i].item<double>() - old_logp[i].item<double>());
      const double clipped = std::min(std::max(ratio, 0.8), 1.2);
      const bool uses_clipped = clipped * adv < ratio * adv;
      loss += -std::min(ratio * adv, clipped * adv) / 4;
      const double r = ref_logp[i].item<double>() - start[i].item<double>();
      kl += (std::exp(r) - r - 1) / 4;
      // d/dlogp: the unclipped branch gives -A * ratio; the clipped one is flat inside the clip.
      const double surrogate_grad = uses_clipped && (ratio < 0.8 || ratio > 1.2) ? 0.0 : -adv * ratio;
      grad[i] = surrogate_grad / 4 + 0.05 * (-std::exp(r) + 1) / 4;
    }
    EXPECT_NEAR(t.loss.item<double>(), loss + 0.05 * kl, 1e-12) << "advantage " << adv;
    EXPECT_NEAR(t.kl.item<double>(), kl, 1e-12);
    for (int i = 0; i < 4; ++i) EXPECT_NEAR(logp.grad()[i].item<double>(), grad[i], 1e-12) << "term " << i;
  }
  const GrpoTerms t = grpo_terms(start, old_logp, ref_logp, 1.0, 0.2, 0.0);
  EXPECT_NEAR(t.clip_fraction.item<double>(), 2.0 / 4, 1e-12);  // 1.35 and 0.67 leave [0.8, 1.2]
}

TEST(GrpoLoss, DropLogprobsAreLogSoftmaxOverAllCandidates) {
  const at::Tensor scores = at::tensor({1.0f, 2.0f, 0.5f, -1.0f}).unsqueeze(0);
  const at::Tensor lp = drop_logprobs(scores, at::tensor({int64_t{1}, int64_t{3}}).unsqueeze(0));
  const double z = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(0.5) + std::exp(-1.0));
  EXPECT_NEAR(lp[0][0].item<double>(), 2.0 - z, 1e-6);
  EXPECT_NEAR(lp[0][1].item<double>(), -1.0 - z, 1e-6);
}

// The sampler draws W of the top-2W without replacement with softmax weights. With B = 6, W = 2
// the top 4 are slots {0, 1, 2, 3} and the chance that slot i is drawn is
// p_i + sum_{j != i} p_j p_i / (1 - p_j) (0.87, 0.56, 0.35, 0.22 here). 40000 draws put each
// frequency within 0.0025 (one sigma) of it; the bound is 4 sigma, while plausible wrong samplers
// (uniform over the pool, with replacement, top-W only, all B) miss by more than 0.05. The bottom
// two slots can never be drawn.
TEST(DropSelection, SampledFrequenciesFollowTheTopTwoWSoftmax) {
  const at::Tensor scores = at::tensor({2.0f, 1.0f, 0.5f, 0.0f, -3.0f, -4.0f}).unsqueeze(0);
  const at::Tensor p = at::softmax(scores[0].slice(0, 0, 4).to(at::kDouble), 0);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(2024);
  std::vector<int64_t> counts(6, 0);
  const int n = 40000;
  for (int i = 0; i < n; ++i) {
    const at::Tensor d = sample_w(scores, 2, gen);
    ++counts[static_cast<std::size_t>(d[0][0].item<int64_t>())];
    ++counts[static_cast<std::size_t>(d[0][1].item<int64_t>())];
  }
  for (int64_t i = 0; i < 4; ++i) {
    double want = p[i].item<double>();
    for (int64_t j = 0; j < 4; ++j) {
      if (j != i) want += p[j].item<double>() * p[i].item<double>() / (1 - p[j].item<double>());
    }
    EXPECT_NEAR(static_cast<double>(counts[static_cast<std::size_t>(i)]) / n, want, 0.01) << "slot " << i;
  }
  EXPECT_EQ(counts[4] + counts[5], 0);
}

}  // namespace
}  // namespace foresight
