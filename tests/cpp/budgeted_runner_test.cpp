#include "cache/budgeted_runner.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include "golden/recorder.h"
#include "kernels/drop_selection.h"
#include "model/attention.h"
#include "model/token_metrics.h"
#include "model/transformer.h"
#include "policy/policy_drops.h"
#include "tiny_model.h"

namespace foresight {
namespace {

using test_support::random_ids;
using test_support::tiny_model;

TEST(BudgetedRunner, WithTheWholeTraceInBudgetItIsTheFullCacheModel) {
  const Transformer model = tiny_model("full", 4, 2);
  const auto ids = random_ids(40, 1);
  ForcedDrops none(at::empty({2, 0, 2, 8}, at::kInt));
  const BudgetedRun run = run_budgeted(model, ids, {64, 8}, none);
  const at::Tensor tokens = at::tensor(ids, at::kLong);
  const TokenMetrics full = token_metrics(model, model.forward(tokens, 0, no_cache_attention()), tokens);
  EXPECT_EQ(run.drop_slots.size(1), 0);
  EXPECT_LT((run.nll - full.nll).abs().max().item<double>(), 1e-5);
}

TEST(BudgetedRunner, ForcedModeReproducesTheGoldenTrajectory) {
  const Transformer model = tiny_model("forced", 6, 2);
  const auto ids = random_ids(75, 2);  // 7 steps with B 16, W 8 (at 24, 32, ..., 72 tokens), a partial last chunk
  const EvictionSchedule schedule{16, 8};
  const GoldenTrace golden = record_golden_trace(model, ids, {schedule, {8, 8}, false});
  ASSERT_EQ(golden.drop_slots.size(1), 7);
  ForcedDrops forced(golden.drop_slots);
  const BudgetedRun run = run_budgeted(model, ids, schedule, forced);
  ASSERT_EQ(run.drop_positions.sizes(), golden.drop_positions.sizes());
  EXPECT_TRUE(at::equal(run.drop_slots, golden.drop_slots));
  EXPECT_TRUE(at::equal(run.drop_positions, golden.drop_positions));
  // Eviction changes the later predictions, but not the initial chunk's.
  EXPECT_LT((run.nll.slice(0, 0, 16) - golden.nll.slice(0, 0, 16)).abs().max().item<double>(), 1e-5);
  EXPECT_GT((run.nll.slice(0, 24) - golden.nll.slice(0, 24)).abs().max().item<double>(), 1e-4);
}

// Scores candidates by age: the oldest position is the most evictable.
class OldestFirst : public EvictionPolicy {
 public:
  std::string name() const override { return "oldest-first"; }
  at::Tensor score(const StepView& view) override { return -view.positions.to(at::kFloat); }
};

TEST(BudgetedRunner, GreedyDropsFollowThePolicyScores) {
  const Transformer model = tiny_model("greedy", 4, 2);
  const auto ids = random_ids(60, 3);
  OldestFirst policy;
  PolicyDrops greedy(policy, FeatureSet::Recency, 4);
  const BudgetedRun run = run_budgeted(model, ids, {16, 4}, greedy);
  // Dropping the oldest each time is a sliding window: step s drops positions 4s .. 4s+3.
  for (int64_t s = 0; s < run.drop_positions.size(1); ++s) {
    const at::Tensor want = at::arange(4 * s, 4 * s + 4, at::kInt).expand({2, 2, 4});
    EXPECT_TRUE(at::equal(run.drop_positions.select(1, s), want)) << "step " << s;
  }
}

TEST(DropSelection, SampledDropsComeFromTheTopTwoWAndRepeatWithTheSeed) {
  at::manual_seed(0);
  const at::Tensor scores = at::randn({3, 32});
  const at::Tensor top = std::get<1>(scores.topk(8, -1));
  at::Generator a = at::make_generator<at::CPUGeneratorImpl>(9), b = at::make_generator<at::CPUGeneratorImpl>(9);
  for (int i = 0; i < 20; ++i) {
    const at::Tensor drops = sample_w(scores, 4, a);
    EXPECT_TRUE(at::equal(drops, sample_w(scores, 4, b)));
    for (int64_t h = 0; h < 3; ++h) {
      EXPECT_EQ(std::get<0>(at::_unique(drops[h])).numel(), 4);
      EXPECT_TRUE(at::isin(drops[h], top[h]).all().item<bool>());
    }
  }
  const at::Tensor tied = at::tensor({1.f, 3.f, 3.f, 0.f, 2.f}).unsqueeze(0);  // ties go to the lower slot
  EXPECT_TRUE(at::equal(top_w(tied, 2), at::tensor({int64_t{1}, int64_t{2}}).unsqueeze(0)));
}

}  // namespace
}  // namespace foresight
