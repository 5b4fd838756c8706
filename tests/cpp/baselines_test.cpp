#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <limits>

#include "common/error.h"
#include "kernels/drop_selection.h"
#include "policy/features.h"
#include "policy/golden_replay.h"
#include "policy/h2o.h"
#include "policy/policy_drops.h"
#include "policy/random_policy.h"
#include "policy/registry.h"
#include "policy/rkv.h"
#include "policy/scorer.h"
#include "policy/snapkv.h"
#include "policy/streaming_llm.h"
#include "policy/tova.h"
#include "error_text.h"
#include "tiny_model.h"

namespace foresight {
namespace {

using test_support::error_text;
using test_support::random_ids;
using test_support::tiny_model;

// One KV head with G = 2 query heads, a chunk of T = 4 queries, B = 8 candidates at positions
// 0..7, head_dim 2. Each test sets the input its policy reads and knows the right drops (W = 2).
struct HandStep {
  at::Tensor probs = at::full({1, 2, 4, 8}, 0.1f);  // [Hkv, G, T, B]
  at::Tensor cum = at::ones({1, 8, 2});
  at::Tensor keys = at::randn({1, 8, 2});
  at::Tensor positions = at::arange(8, at::kLong).unsqueeze(0);
  int64_t protect = 0;

  StepView view() const {
    const at::Tensor features = candidate_features(probs, cum, cum, keys, at::zeros({1, 8, 2}), FeatureSet::Recency);
    return {0, 0, features, positions, probs, protect};
  }
};

at::Tensor slots(std::vector<int64_t> s) { return at::tensor(s, at::kLong).unsqueeze(0); }

// The drops a policy makes at the step, greedy, the way every driver asks for them.
at::Tensor drops(EvictionPolicy& p, const HandStep& s) { return PolicyDrops(p, FeatureSet::Recency, 2).decide_view(s.view()); }

TEST(Baselines, StreamingLlmDropsTheOldestAfterTheFourSinks) {
  HandStep s;
  s.protect = 4;  // streaming_llm's default: its attention sinks
  StreamingLlm p;
  EXPECT_TRUE(at::equal(drops(p, s), slots({4, 5})));
  s.positions = at::tensor(std::vector<int64_t>{0, 1, 2, 3, 40, 9, 12, 30}).unsqueeze(0);  // after compaction
  EXPECT_TRUE(at::equal(drops(p, s), slots({5, 6})));
  s.protect = 0;  // no sinks: the oldest of all go
  EXPECT_TRUE(at::equal(drops(p, s), slots({0, 1})));
  EXPECT_EQ(find_policy("streaming_llm").default_protect, (Protect{4, false}));
  EXPECT_EQ(find_policy("h2o").default_protect, Protect{});
}

TEST(Baselines, ProtectedSlotsAreNeverDroppedEvenWhenTheyScoreHighest) {
  HandStep s;
  s.protect = 3;
  s.cum.slice(1, 0, 3).fill_(-5.0);  // H2O would drop slots 0-2 first: the least accumulated attention
  s.cum[0][6][0] = 0.5;
  EXPECT_TRUE(at::equal(drops(*std::make_unique<H2o>(), s), slots({3, 6})));  // 3: the lowest slot among the tied rest
}

TEST(Baselines, H2oDropsTheLeastAccumulatedAttention) {
  HandStep s;
  s.cum[0][3][0] = 0.2;  // slot 3: 0.2 + 1.0; slot 6: 0.1 + 0.3; the rest 2.0
  s.cum[0][6][0] = 0.1;
  s.cum[0][6][1] = 0.3;
  EXPECT_TRUE(at::equal(drops(*std::make_unique<H2o>(), s), slots({3, 6})));
}

TEST(Baselines, TovaDropsWhatTheNewestQueryIgnores) {
  HandStep s;
  s.probs.select(2, 3).select(2, 1).fill_(0.0);  // the last query ignores slots 1 and 7 (both heads)
  s.probs.select(2, 3).select(2, 7).fill_(0.01);
  s.probs.select(2, 0).select(2, 2).fill_(0.0);  // an earlier query ignoring slot 2 does not count
  Tova p;
  EXPECT_TRUE(at::equal(drops(p, s), slots({1, 7})));
}

TEST(Baselines, SnapKvKeepsTheNeighboursOfAttendedSlots) {
  HandStep s;
  s.probs.fill_(0.01);
  s.probs.select(3, 1).fill_(0.5);   // slot 1 is attended
  s.probs.select(3, 6).fill_(0.02);  // slot 6 a little
  s.probs.select(3, 7).fill_(0.0);   // slot 7 not at all
  // Votes (summed over 2 heads x 4 queries): slot 1 4.0, slot 6 0.16, slot 7 0, the rest 0.08.
  // Max-pooled with kernel 7: slots 0-4 take slot 1's 4.0; slots 5, 6, 7 all take slot 6's 0.16,
  // a three-way tie broken to the lower slots.
  SnapKv p(32, 7);
  EXPECT_TRUE(at::equal(drops(p, s), slots({5, 6})));
  // Without pooling the raw votes decide: slot 7 (0), then slot 0 (0.08, ties to the lower slot).
  SnapKv narrow(32, 1);
  EXPECT_TRUE(at::equal(drops(narrow, s), slots({0, 7})));
}

TEST(Baselines, RkvDropsRedundantKeys) {
  HandStep s;
  s.keys = at::tensor({1.f, 0.f, 0.f, 1.f, -1.f, 0.f, 0.f, -1.f, 0.7f, 0.7f, 0.7f, 0.7f, -0.7f, 0.7f, 0.7f, -0.7f})
               .view({1, 8, 2});  // slots 4 and 5 are the same direction: the most redundant pair
  Rkv p(0.1);
  EXPECT_TRUE(at::equal(drops(p, s), slots({4, 5})));
  s.probs.select(3, 4).fill_(5.0);  // with lambda 1, attention alone decides: 4 is now the most kept
  Rkv attention_only(1.0);
  EXPECT_FALSE(at::equal(drops(attention_only, s), slots({4, 5})));
}

TEST(Baselines, RandomRepeatsWithItsSeedAndVariesAcrossSeeds) {
  HandStep s;
  RandomPolicy a(5), b(5), c(6);
  const at::Tensor sa = a.score(s.view());
  EXPECT_TRUE(at::equal(sa, b.score(s.view())));
  EXPECT_FALSE(at::equal(sa, c.score(s.view())));
}

// An oracle of 2 layers x 3 steps whose highest two scores sit at other slots in every cell: each
// (layer, step) must replay its own cell's drops.
TEST(Baselines, GoldenReplayDropsTheOraclesChoiceAtEachLayerAndStep) {
  at::Tensor oracle = at::zeros({2, 3, 1, 8});
  const int64_t pairs[2][3][2] = {{{0, 1}, {2, 5}, {6, 7}}, {{3, 4}, {1, 7}, {0, 2}}};
  for (int64_t l = 0; l < 2; ++l) {
    for (int64_t t = 0; t < 3; ++t) {
      oracle[l][t][0][pairs[l][t][0]] = 2.0;
      oracle[l][t][0][pairs[l][t][1]] = 1.0;
    }
  }
  GoldenReplay p(oracle);
  HandStep s;
  for (int64_t l = 0; l < 2; ++l) {
    for (int64_t t = 0; t < 3; ++t) {
      StepView view = s.view();
      view.layer = l;
      view.step = t;
      EXPECT_TRUE(at::equal(top_w(p.score(view), 2), slots({pairs[l][t][0], pairs[l][t][1]})))
          << "layer " << l << " step " << t;
    }
  }
  StepView past = s.view();
  past.step = 3;
  EXPECT_THROW(p.score(past), Error);  // a longer trace than the oracle's
}

TEST(Registry, VariantsAreNamedByTheirProtect) {
  EXPECT_EQ(variant_name(find_policy("h2o"), Protect{}), "h2o");
  EXPECT_EQ(variant_name(find_policy("h2o"), Protect{0, true}), "h2o+prompt");
  EXPECT_EQ(variant_name(find_policy("streaming_llm"), Protect{4, false}), "streaming_llm");
  EXPECT_EQ(variant_name(find_policy("streaming_llm"), Protect{}), "streaming_llm+0");
  EXPECT_EQ(variant_name(find_policy("random"), Protect{20, false}), "random+20");
}

TEST(Registry, UnknownNamesListTheKnownOnes) {
  try {
    find_policy("h3o");
    FAIL() << "no error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("known policies: streaming_llm, h2o, snapkv, tova, rkv, random, golden, "
                                         "foresight, foresight_sampled"),
              std::string::npos)
        << e.what();
  }
}

// Checks at every step of a real run that the policy's drops are exactly its W highest scores
// (no kept candidate outranks a dropped one) and never among the newest W tokens.
class CheckedDrops : public FeatureDecider {
 public:
  CheckedDrops(EvictionPolicy& policy, const EvictionSchedule& s)
      : FeatureDecider(FeatureSet::Recency), policy_(policy), schedule_(s) {}
  at::Tensor decide_view(const StepView& view) override {
    const at::Tensor scores = policy_.score(view);
    const at::Tensor d = top_w(scores, schedule_.interval);
    const at::Tensor dropped = at::zeros_like(scores, at::kBool).scatter_(1, d, true);
    const at::Tensor kept_max = std::get<0>(scores.masked_fill(dropped, -std::numeric_limits<float>::infinity()).max(1));
    const at::Tensor dropped_min = std::get<0>(scores.masked_fill(~dropped, std::numeric_limits<float>::infinity()).min(1));
    EXPECT_TRUE((dropped_min >= kept_max).all().item<bool>()) << policy_.name() << " step " << view.step;
    const int64_t newest = schedule_.budget + view.step * schedule_.interval;  // first position of the newest chunk
    EXPECT_TRUE((view.positions.gather(1, d) < newest).all().item<bool>()) << policy_.name();
    ++steps;
    return d;
  }
  int64_t steps = 0;

 private:
  EvictionPolicy& policy_;
  EvictionSchedule schedule_;
};

TEST(Registry, EveryPolicyDropsItsTopWAndNeverTheNewestChunk) {
  const Transformer model = tiny_model("baselines", 4, 2);
  const auto ids = random_ids(60, 9);
  const EvictionSchedule schedule{16, 8};
  const ModelConfig& c = model.config();
  LearnedScorer scorer({{"qwen3", c.num_layers, c.num_heads, c.num_kv_heads, c.head_dim, "t"}, 2, FeatureSet::Recency, schedule}, 1);
  const at::Tensor oracle = at::randn({2, schedule.steps(60), 2, 16});
  for (const PolicyPreset& preset : policy_presets()) {
    const auto policy = make_policy(preset, {&scorer, oracle, 3});
    CheckedDrops decider(*policy, schedule);
    run_budgeted(model, ids, schedule, decider);
    EXPECT_EQ(decider.steps, 2 * schedule.steps(60)) << preset.name;
  }
}

// Under protect P, at every step of a real run: the protected positions 0..P-1 sit in slots 0..P-1
// (what mask_protected relies on), no drop is protected, and greedy drops are the W highest scores
// among the unprotected slots, found here by sorting each row by hand.
// Keeps the scores its policy gave last (random's differ at every call).
class Recorded : public EvictionPolicy {
 public:
  explicit Recorded(EvictionPolicy& policy) : policy_(policy) {}
  std::string name() const override { return policy_.name(); }
  at::Tensor score(const StepView& view) override { return last = policy_.score(view); }
  at::Tensor last;

 private:
  EvictionPolicy& policy_;
};

class ProtectChecked : public DropDecider {
 public:
  ProtectChecked(EvictionPolicy& policy, const EvictionSchedule& s, bool sampled)
      : policy_(policy), schedule_(s), inner_(policy_, FeatureSet::Recency, s.interval,
                                               sampled ? std::optional<at::Generator>(at::make_generator<at::CPUGeneratorImpl>(7))
                                                       : std::nullopt),
        sampled_(sampled) {}
  at::Tensor decide(const CacheStep& step) override {
    const int64_t p = schedule_.protect;
    EXPECT_EQ(step.protect, p);
    EXPECT_TRUE(at::equal(step.positions.slice(1, 0, p), at::arange(p, at::kLong).expand({step.positions.size(0), p})));
    const at::Tensor d = inner_.decide(step);
    EXPECT_TRUE((d >= p).all().item<bool>()) << policy_.name() << " dropped a protected slot at step " << step.step;
    if (!sampled_) {
      const at::Tensor scores = policy_.last;
      for (int64_t k = 0; k < scores.size(0); ++k) {
        std::vector<std::pair<float, int64_t>> rest;
        for (int64_t j = p; j < scores.size(1); ++j) rest.emplace_back(-scores[k][j].item<float>(), j);
        std::stable_sort(rest.begin(), rest.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
        std::vector<int64_t> want;
        for (int64_t i = 0; i < schedule_.interval; ++i) want.push_back(rest[static_cast<std::size_t>(i)].second);
        std::sort(want.begin(), want.end());
        EXPECT_TRUE(at::equal(d[k], at::tensor(want, at::kLong))) << policy_.name() << " step " << step.step;
      }
    }
    ++steps;
    return d;
  }
  int64_t steps = 0;

 private:
  Recorded policy_;
  EvictionSchedule schedule_;
  PolicyDrops inner_;
  bool sampled_;
};

TEST(Registry, EveryPolicyUnderProtectKeepsTheProtectedAndDropsItsTopWOfTheRest) {
  const Transformer model = tiny_model("baselines", 4, 2);
  const auto ids = random_ids(60, 9);
  const ModelConfig& c = model.config();
  for (const int64_t protect : {1, 5, 8}) {
    const EvictionSchedule schedule{16, 8, protect};
    LearnedScorer scorer({{"qwen3", c.num_layers, c.num_heads, c.num_kv_heads, c.head_dim, "t"}, 2, FeatureSet::Recency,
                          schedule}, 1);
    const at::Tensor oracle = at::randn({2, schedule.steps(60), 2, 16});
    for (const PolicyPreset& preset : policy_presets()) {
      const auto policy = make_policy(preset, {&scorer, oracle, 3});
      ProtectChecked decider(*policy, schedule, preset.sampled);
      run_budgeted(model, ids, schedule, decider);
      EXPECT_EQ(decider.steps, 2 * schedule.steps(60)) << preset.name << " protect " << protect;
    }
  }
}

TEST(Schedule, ProtectIsParsedResolvedAndRefusedBeyondBMinusW) {
  EXPECT_EQ(Protect::parse("prompt"), (Protect{0, true}));
  EXPECT_EQ(Protect::parse("12"), (Protect{12, false}));
  for (const char* bad : {"-1", "", "4x", "Prompt", "1.5", "+4", " 4", "99999999999999999999"}) {
    EXPECT_THROW(Protect::parse(bad), Error) << bad;
  }
  const EvictionSchedule s{32, 8};
  EXPECT_EQ(Protect::parse("prompt").resolve(s, 20, "t").protect, 20);
  EXPECT_EQ(Protect::parse("7").resolve(s, 20, "t").protect, 7);
  EXPECT_EQ(Protect::parse("24").resolve(s, std::nullopt, "t").protect, 24);
  const std::string too_long = error_text([&] { Protect::parse("prompt").resolve(s, 25, "prompt \"q7\""); });
  for (const char* part : {"prompt \"q7\"", "25 tokens", "budget - interval = 24"}) {
    EXPECT_NE(too_long.find(part), std::string::npos) << too_long;
  }
  EXPECT_NE(error_text([&] { Protect::parse("prompt").resolve(s, std::nullopt, "trace a"); }).find("no prompt_len"),
            std::string::npos);
  EXPECT_THROW(Protect::parse("25").resolve(s, 3, "t"), Error);
  EXPECT_THROW((EvictionSchedule{32, 8, 25}.validate()), Error);
  EXPECT_NO_THROW((EvictionSchedule{32, 8, 24}.validate()));
}

}  // namespace
}  // namespace foresight
