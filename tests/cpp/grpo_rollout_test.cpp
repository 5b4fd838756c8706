#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/GradMode.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>

#include "kernels/drop_selection.h"
#include "policy/scorer.h"
#include "rl/exact_update.h"
#include "rl/grpo_loss.h"
#include "rl/policy_update.h"
#include "rl/rollout.h"
#include "error_text.h"
#include "tiny_model.h"

namespace foresight {
namespace {

using test_support::error_text;
using test_support::random_ids;
using test_support::tiny_model;

double log_sum_exp(std::initializer_list<double> xs) {
  double s = 0;
  for (const double x : xs) s += std::exp(x);
  return std::log(s);
}

TEST(PlackettLuce, HandComputedDrawOrder) {
  // B 5, W 2: the pool is the top 4 {4, 1, 0, 2}; slot 3 (score -1) is out of it.
  const at::Tensor scores = at::tensor({1.0f, 2.0f, 0.5f, -1.0f, 3.0f}).unsqueeze(0);
  const at::Tensor pool = at::tensor(std::vector<int64_t>{4, 1, 0, 2}).unsqueeze(0);
  const at::Tensor order = at::tensor(std::vector<int64_t>{1, 4}).unsqueeze(0);
  const double want = (2.0 - log_sum_exp({3.0, 2.0, 1.0, 0.5})) + (3.0 - log_sum_exp({3.0, 1.0, 0.5}));
  EXPECT_NEAR(plackett_luce_logprobs(scores, pool, order)[0][0].item<double>(), want, 1e-6);
}

TEST(PlackettLuce, OrderedDrawsFormADistribution) {
  const at::Tensor scores = at::tensor({0.3f, -1.2f, 2.0f, 0.9f, -0.4f, 1.1f}).unsqueeze(0);
  const at::Tensor pool = std::get<1>(scores.topk(4, -1));
  double total = 0;
  for (int64_t a = 0; a < 4; ++a) {
    for (int64_t b = 0; b < 4; ++b) {
      if (a == b) continue;
      const at::Tensor order = at::stack({pool[0][a], pool[0][b]}).unsqueeze(0);
      total += std::exp(plackett_luce_logprobs(scores, pool, order)[0][0].item<double>());
    }
  }
  EXPECT_NEAR(total, 1.0, 1e-5);
}

// The sampler and the Plackett-Luce log-probability describe the same distribution: over 40000
// draws each ordered pair's frequency is within 4 sigma (sigma <= 0.0023) of exp(logp).
TEST(PlackettLuce, MatchesTheSamplersOrderedDrawFrequencies) {
  const at::Tensor scores = at::tensor({2.0f, 1.0f, 0.5f, 0.0f, -3.0f}).unsqueeze(0);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(7);
  std::map<std::pair<int64_t, int64_t>, int> counts;
  const int n = 40000;
  SampledDrops last;
  for (int i = 0; i < n; ++i) {
    last = sample_drops(scores, 2, gen);
    ++counts[{last.order[0][0].item<int64_t>(), last.order[0][1].item<int64_t>()}];
  }
  EXPECT_EQ(counts.size(), 12u);  // every ordered pair of the 4-slot pool, nothing else
  for (const auto& [pair, count] : counts) {
    const at::Tensor order = at::tensor({pair.first, pair.second}).unsqueeze(0);
    const double p = std::exp(plackett_luce_logprobs(scores, last.pool, order)[0][0].item<double>());
    EXPECT_NEAR(static_cast<double>(count) / n, p, 0.0095) << pair.first << "," << pair.second;
  }
}

ScorerSpec spec_of(const Transformer& model, EvictionSchedule schedule) {
  const ModelConfig& c = model.config();
  ModelFingerprint fp{"qwen3", c.num_layers, c.num_heads, c.num_kv_heads, c.head_dim, "test"};
  return {fp, c.group_size(), FeatureSet::Recency, schedule};
}

// Moves the policy away from the one that drew the rollout, so ratios differ from 1 and some clip.
void perturb(LearnedScorer& scorer, double scale) {
  c10::NoGradGuard no_grad;
  at::manual_seed(11);
  for (at::Tensor p : scorer.parameters()) p.add_(at::randn_like(p) * scale);
}

std::vector<at::Tensor> take_grads(LearnedScorer& scorer) {
  std::vector<at::Tensor> out;
  for (at::Tensor p : scorer.parameters()) {
    out.push_back(p.grad().clone());
    p.mutable_grad().zero_();
  }
  return out;
}

class RolloutUpdate : public ::testing::TestWithParam<LogprobKind> {};

// The update from kept features, the update that re-runs the model, and a direct evaluation of
// DESIGN.md §6's objective (per layer: the mean of all its terms; summed over layers) agree.
TEST_P(RolloutUpdate, KeptFeaturesReplayAndTheDirectFormulaAgree) {
  const Transformer model = tiny_model("rollout", 4, 2);
  const auto ids = random_ids(70, 5);  // B 16, W 8: (70 - 16 - 1) / 8 = 6 eviction steps
  const EvictionSchedule schedule{16, 8};
  LearnedScorer policy(spec_of(model, schedule), 1), reference(spec_of(model, schedule), 2);
  RolloutOptions kept{schedule, FeatureSet::Recency, GetParam(), true};
  RolloutOptions dropped = kept;
  dropped.keep_features = false;
  const Rollout a = sample_rollout(model, ids, kept, policy, reference, at::make_generator<at::CPUGeneratorImpl>(3));
  const Rollout b = sample_rollout(model, ids, dropped, policy, reference, at::make_generator<at::CPUGeneratorImpl>(3));
  ASSERT_TRUE(at::equal(a.drop_slots, b.drop_slots));
  ASSERT_EQ(a.steps[0].size(), 6u);
  EXPECT_FALSE(b.steps[0][0].features.defined());
  // Kept: every layer x 6 steps x [Hkv, B 16, F] float32 each, F = 2 * head_dim + 8 * G (recency features).
  const at::Tensor& f = a.steps[0][0].features;
  const int64_t group = model.config().num_heads / model.config().num_kv_heads;
  ASSERT_EQ(f.size(2), 2 * model.config().head_dim + 8 * group);
  EXPECT_EQ(kept_feature_bytes(a), model.config().num_layers * 6 * model.config().num_kv_heads * 16 * f.size(2) * 4);
  EXPECT_EQ(kept_feature_bytes(b), 0);

  // Plackett-Luce terms sum W log-ratios, so a smaller move already clips.
  perturb(policy, GetParam() == LogprobKind::PerDrop ? 0.3 : 0.05);
  const UpdateOptions options{0.2, 0.05, GetParam()};
  const double advantage = -0.7, weight = 0.25;
  const UpdateStats from_kept = backprop_kept(policy, a, advantage, options, weight);
  const std::vector<at::Tensor> g_kept = take_grads(policy);
  const UpdateStats from_replay = backprop_replayed(model, ids, dropped, policy, b, advantage, options, weight);
  const std::vector<at::Tensor> g_replay = take_grads(policy);

  // Direct: every term of a layer in one grpo_terms call.
  at::Tensor direct = at::zeros({}, at::kFloat);
  double clip = 0;
  for (std::size_t l = 0; l < a.steps.size(); ++l) {
    std::vector<at::Tensor> logp, old_logp, ref_logp;
    for (const RolloutStep& s : a.steps[l]) {
      logp.push_back(eviction_logprobs(policy.forward(static_cast<int64_t>(l), s.features), s.drops, GetParam(), a.protect).flatten());
      old_logp.push_back(s.old_logp.flatten());
      ref_logp.push_back(s.ref_logp.flatten());
    }
    const GrpoTerms t = grpo_terms(at::cat(logp), at::cat(old_logp), at::cat(ref_logp), advantage, 0.2, 0.05);
    direct = direct + t.loss * weight;
    clip += t.clip_fraction.item<double>();
  }
  direct.backward();
  const std::vector<at::Tensor> g_direct = take_grads(policy);

  const double tolerance = 1e-5 * std::max(1.0, std::abs(direct.item<double>()));
  EXPECT_NEAR(from_kept.loss, direct.item<double>(), tolerance);
  EXPECT_NEAR(from_replay.loss, direct.item<double>(), tolerance);
  EXPECT_NEAR(from_kept.clip, clip, 1e-6);
  EXPECT_GT(clip, 0.0) << "the perturbation should push some ratios out of the clip range";
  EXPECT_EQ(from_kept.layers, 2);
  EXPECT_EQ(from_replay.layers, 2);
  const auto names = policy.named_parameters();
  for (std::size_t i = 0; i < g_direct.size(); ++i) {
    // Both log-probabilities are invariant to a shift of all scores, so fc2.bias gets a zero
    // gradient up to rounding: nothing to compare.
    if (names[i].first.ends_with("fc2.bias")) continue;
    const double scale = g_direct[i].abs().max().item<double>();
    EXPECT_LT((g_kept[i] - g_direct[i]).abs().max().item<double>(), 1e-4 * scale) << names[i].first;
    EXPECT_LT((g_replay[i] - g_direct[i]).abs().max().item<double>(), 1e-4 * scale) << names[i].first;
  }
  EXPECT_GT(g_direct[0].abs().max().item<double>(), 0.0);
}

INSTANTIATE_TEST_SUITE_P(Logprob, RolloutUpdate, ::testing::Values(LogprobKind::PerDrop, LogprobKind::PlackettLuce));

// The exact update (gradients taken during the rollouts, combined with the advantages after) and
// the kept-features update of the very same rollouts give the same gradients and statistics: at a
// step's first update the ratio is 1, so the surrogate's gradient is linear in the advantage.
TEST_P(RolloutUpdate, ExactUpdateDuringTheRolloutsEqualsTheKeptFeaturesUpdate) {
  const Transformer model = tiny_model("exact", 4, 2);
  const auto ids = random_ids(70, 7);
  const EvictionSchedule schedule{16, 8};
  LearnedScorer policy(spec_of(model, schedule), 1), reference(spec_of(model, schedule), 2);
  const RolloutOptions kept{schedule, FeatureSet::Recency, GetParam(), true};
  RolloutOptions none = kept;
  none.keep_features = false;
  const UpdateOptions options{0.2, 0.05, GetParam()};
  const double weight = 1.0 / 3;
  const std::vector<double> advantages{1.2, -0.3, -0.9};
  for (at::Tensor p : policy.parameters()) p.mutable_grad() = at::zeros_like(p);

  UpdateStats exact_stats;
  std::vector<Rollout> rollouts;
  for (std::size_t i = 0; i < advantages.size(); ++i) {
    ExactGradient exact(policy, schedule.steps(static_cast<int64_t>(ids.size())), options, weight);
    const Rollout r = sample_rollout(model, ids, none, policy, reference,
                                     at::make_generator<at::CPUGeneratorImpl>(10 + i), &exact);
    rollouts.push_back(sample_rollout(model, ids, kept, policy, reference, at::make_generator<at::CPUGeneratorImpl>(10 + i)));
    ASSERT_TRUE(at::equal(r.drop_slots, rollouts.back().drop_slots)) << "the same seed draws the same drops";
    exact_stats += exact.apply(advantages[i]);
  }
  const std::vector<at::Tensor> g_exact = take_grads(policy);
  UpdateStats kept_stats;
  for (std::size_t i = 0; i < advantages.size(); ++i) {
    kept_stats += backprop_kept(policy, rollouts[i], advantages[i], options, weight);
  }
  const std::vector<at::Tensor> g_kept = take_grads(policy);

  EXPECT_NEAR(exact_stats.loss, kept_stats.loss, 1e-6);
  EXPECT_NEAR(exact_stats.kl, kept_stats.kl, 1e-6);
  EXPECT_GT(exact_stats.kl, 1e-3) << "the two scorers should disagree, so that the KL term counts";
  EXPECT_EQ(kept_stats.clip, 0.0);
  EXPECT_EQ(exact_stats.clip, 0.0);
  EXPECT_EQ(exact_stats.layers, kept_stats.layers);
  const auto names = policy.named_parameters();
  for (std::size_t i = 0; i < g_kept.size(); ++i) {
    if (names[i].first.ends_with("fc2.bias")) continue;  // zero up to rounding: see above
    const double scale = g_kept[i].abs().max().item<double>();
    EXPECT_GT(scale, 0.0) << names[i].first;
    EXPECT_LT((g_exact[i] - g_kept[i]).abs().max().item<double>(), 1e-5 * scale) << names[i].first;
  }
}

// log p(slot) = score[slot] - log sum_{k >= protect} exp(score[k]) per head, summed in double by a
// plain loop over the unprotected candidates: the per-drop log-probability written out, independent
// of grpo_loss's log_softmax.
at::Tensor naive_drop_logprobs(const at::Tensor& scores, const at::Tensor& slots, int64_t protect = 0) {
  const at::Tensor s = scores.to(at::kDouble).contiguous();
  at::Tensor out = at::empty(slots.sizes(), at::kDouble);
  for (int64_t h = 0; h < s.size(0); ++h) {
    double total = 0;
    for (int64_t k = protect; k < s.size(1); ++k) total += std::exp(s[h][k].item<double>());
    for (int64_t i = 0; i < slots.size(1); ++i) {
      out[h][i] = s[h][slots[h][i].item<int64_t>()].item<double>() - std::log(total);
    }
  }
  return out;
}

// The policy draws, the reference (another scorer) only scores: each step's old and reference
// log-probabilities are their own scorer's, at the drawn slots, over the unprotected candidates.
class RolloutLogprobs : public ::testing::TestWithParam<int64_t> {};

TEST_P(RolloutLogprobs, OldAndReferenceLogprobsAreEachScorersLogprobsAtTheDrops) {
  const Transformer model = tiny_model("rollout_logp", 4, 2);
  const auto ids = random_ids(50, 6);
  const EvictionSchedule schedule{16, 8, GetParam()};
  LearnedScorer policy(spec_of(model, schedule), 1), reference(spec_of(model, schedule), 2);
  const Rollout r = sample_rollout(model, ids, {schedule, FeatureSet::Recency, LogprobKind::PerDrop, true}, policy,
                                   reference, at::make_generator<at::CPUGeneratorImpl>(4));
  ASSERT_EQ(r.steps[0].size(), 4u);  // (50 - 16 - 1) / 8
  c10::NoGradGuard no_grad;
  for (std::size_t l = 0; l < r.steps.size(); ++l) {
    for (std::size_t s = 0; s < r.steps[l].size(); ++s) {
      const RolloutStep& step = r.steps[l][s];
      const auto layer = static_cast<int64_t>(l);
      EXPECT_GE(step.drops.slots.min().item<int64_t>(), schedule.protect) << "a protected slot was drawn";
      const at::Tensor want_old = naive_drop_logprobs(policy.forward(layer, step.features), step.drops.slots, schedule.protect);
      const at::Tensor want_ref =
          naive_drop_logprobs(reference.forward(layer, step.features), step.drops.slots, schedule.protect);
      EXPECT_TRUE(at::allclose(step.old_logp.to(at::kDouble), want_old, 1e-5, 1e-5)) << "layer " << l << " step " << s;
      EXPECT_TRUE(at::allclose(step.ref_logp.to(at::kDouble), want_ref, 1e-5, 1e-5)) << "layer " << l << " step " << s;
      EXPECT_FALSE(at::allclose(want_old, want_ref, 1e-3, 1e-3)) << "the two scorers should disagree";
      EXPECT_TRUE(at::equal(step.drops.slots, r.drop_slots[layer][static_cast<int64_t>(s)].to(at::kLong)));
    }
  }
}

// Protect 8 = B - W leaves exactly W candidates: every draw takes all of them.
INSTANTIATE_TEST_SUITE_P(Protect, RolloutLogprobs, ::testing::Values(0, 5, 8));

// A scorer whose weights went NaN must stop the rollout by layer and step, not feed the sampler a
// NaN softmax.
TEST(Rollout, NonFiniteScoresAreRefusedByLayerAndStep) {
  const Transformer model = tiny_model("rollout_nan", 4, 2);
  const auto ids = random_ids(50, 6);
  const EvictionSchedule schedule{16, 8};
  LearnedScorer policy(spec_of(model, schedule), 1), reference(spec_of(model, schedule), 2);
  const RolloutOptions options{schedule, FeatureSet::Recency, LogprobKind::PerDrop, false};
  auto error_of = [&](LearnedScorer& p, LearnedScorer& ref) {
    return error_text([&] { sample_rollout(model, ids, options, p, ref, at::make_generator<at::CPUGeneratorImpl>(4)); });
  };
  {
    c10::NoGradGuard no_grad;
    for (const auto& [name, t] : policy.named_parameters()) {
      if (name == "layers.1.fc2.bias") t.fill_(NAN);  // every score of layer 1, from its first step
    }
  }
  const std::string e = error_of(policy, reference);
  EXPECT_NE(e.find("policy scorer gave 32 non-finite scores (NaN or inf) of 32"), std::string::npos) << e;  // Hkv 2 x B 16
  EXPECT_NE(e.find("layer 1, eviction step 0"), std::string::npos) << e;
  // The same scorer as the frozen reference: named as such.
  LearnedScorer clean(spec_of(model, schedule), 1);
  const std::string r = error_of(clean, policy);
  EXPECT_NE(r.find("reference scorer"), std::string::npos) << r;
  EXPECT_NE(r.find("layer 1, eviction step 0"), std::string::npos) << r;
}

// A free-running rollout is generation under sampled drops: teacher-forcing what it wrote through
// the ordinary rollout, with a generator seeded alike, draws the same drops at every step it kept
// (DESIGN.md §10's invariant), and it keeps exactly the steps taken before its last token. A stop
// id ends it at the stop's first occurrence, with the same text and drops up to there.
TEST(Rollout, FreeRunningRolloutsDrawWhatTeacherForcingTheirTextDraws) {
  const Transformer model = tiny_model("rollout_free", 4, 2);
  const auto prompt = random_ids(30, 8);
  const EvictionSchedule schedule{16, 8};
  LearnedScorer policy(spec_of(model, schedule), 1), reference(spec_of(model, schedule), 2);
  const RolloutOptions options{schedule, FeatureSet::Recency, LogprobKind::PerDrop, true};
  auto gen = [](uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); };
  const std::vector<Rollout> free = sample_free_rollouts(model, prompt, options, policy, reference, {gen(5), gen(6)}, 40, {});
  ASSERT_EQ(free.size(), 2u);
  EXPECT_NE(free[0].generated, free[1].generated) << "other drops, other text (tiny random models are fragile)";
  for (std::size_t g = 0; g < free.size(); ++g) {
    ASSERT_EQ(free[g].generated.size(), 40u);
    std::vector<int64_t> ids = prompt;
    ids.insert(ids.end(), free[g].generated.begin(), free[g].generated.end());
    const Rollout forced = sample_rollout(model, ids, options, policy, reference, gen(5 + g));
    for (std::size_t layer = 0; layer < free[g].steps.size(); ++layer) {
      // 69 tokens fed (the last one written is not): (69 - 16 - 1) / 8 = 6 steps, as for the 70-token trace.
      ASSERT_EQ(free[g].steps[layer].size(), 6u);
      ASSERT_EQ(forced.steps[layer].size(), 6u);
      for (std::size_t s = 0; s < 6; ++s) {
        EXPECT_TRUE(at::equal(free[g].steps[layer][s].drops.slots, forced.steps[layer][s].drops.slots))
            << "rollout " << g << ", layer " << layer << ", step " << s;
      }
    }
  }
  const int64_t stop = free[0].generated[12];
  const auto first = std::find(free[0].generated.begin(), free[0].generated.end(), stop);
  const std::vector<int64_t> until_stop(free[0].generated.begin(), first + 1);
  const std::vector<Rollout> stopped = sample_free_rollouts(model, prompt, options, policy, reference, {gen(5)}, 40, {stop});
  EXPECT_EQ(stopped[0].generated, until_stop);
  // Tokens fed before the stop was written: 30 + (its index); steps = (fed - 17) / 8 once fed > 24.
  const auto fed = static_cast<int64_t>(prompt.size() + until_stop.size() - 1);
  const int64_t steps = fed > 24 ? (fed - 17) / 8 : 0;
  for (std::size_t layer = 0; layer < stopped[0].steps.size(); ++layer) {
    ASSERT_EQ(static_cast<int64_t>(stopped[0].steps[layer].size()), steps);
    for (int64_t s = 0; s < steps; ++s) {
      EXPECT_TRUE(at::equal(stopped[0].steps[layer][static_cast<std::size_t>(s)].drops.slots,
                            free[0].steps[layer][static_cast<std::size_t>(s)].drops.slots));
    }
  }
}

// What an exploded update leaves: finite weights whose scores are huge, or all alike (every hidden
// unit off, so the drops follow slot order). Both are refused by layer and step; the scores of a
// trained scorer (about 0.5 in magnitude on the notes testbed) pass.
TEST(Rollout, SaturatedScoresAreRefusedByLayerAndStep) {
  const Transformer model = tiny_model("rollout_saturated", 4, 2);
  const auto ids = random_ids(50, 6);
  const EvictionSchedule schedule{16, 8};
  const RolloutOptions options{schedule, FeatureSet::Recency, LogprobKind::PerDrop, false};
  LearnedScorer reference(spec_of(model, schedule), 2);
  auto error_with = [&](const std::string& tensor, const std::function<void(at::Tensor&)>& set) {
    LearnedScorer policy(spec_of(model, schedule), 1);
    {
      c10::NoGradGuard no_grad;
      for (auto& [name, t] : policy.named_parameters()) {
        if (name == tensor) set(t);
      }
    }
    return error_text([&] { sample_rollout(model, ids, options, policy, reference, at::make_generator<at::CPUGeneratorImpl>(4)); });
  };
  // fc2.bias 2e4 shifts every score of layer 0 beyond the limit of 1e4 (its fc2 terms are below 16).
  std::string e = error_with("layers.0.fc2.bias", [](at::Tensor& t) { t.fill_(2e4); });
  EXPECT_NE(e.find("saturated: |score| reaches 2000"), std::string::npos) << e;
  EXPECT_NE(e.find("layer 0, eviction step 0"), std::string::npos) << e;
  // fc2.weight 0: every candidate of layer 1 scores its bias alone.
  e = error_with("layers.1.fc2.weight", [](at::Tensor& t) { t.zero_(); });
  EXPECT_NE(e.find("16 candidates all score alike at layer 1, eviction step 0"), std::string::npos) << e;
  EXPECT_EQ(error_with("layers.0.fc2.bias", [](at::Tensor& t) { t.fill_(9e3); }), "no error") << "below the limit passes";
}

}  // namespace
}  // namespace foresight
