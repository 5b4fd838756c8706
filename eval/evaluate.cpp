#include "eval/evaluate.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "policy/drop_overlap.h"
#include "policy/policy_drops.h"

namespace foresight {

namespace {

// Sampled presets draw from the top 2W with a generator seeded per trace; the others are greedy.
std::optional<at::Generator> sampler(const PolicyPreset& preset, uint64_t seed) {
  if (!preset.sampled) return std::nullopt;
  return at::make_generator<at::CPUGeneratorImpl>(seed);
}

// Teacher forcing on the oracle's trajectory; counts how many of its drops the policy picks.
class OverlapDrops : public DropDecider {
 public:
  OverlapDrops(PolicyDrops& policy, const at::Tensor& oracle_drops) : policy_(policy), oracle_drops_(oracle_drops) {}
  at::Tensor decide(const CacheStep& step) override {
    const at::Tensor oracle = oracle_drops_[step.layer][step.step].to(step.positions.device(), at::kLong);
    sum += drop_overlap(policy_.decide(step), oracle).sum().item<double>();
    rows += oracle.size(0);
    return oracle;
  }
  double sum = 0;
  int64_t rows = 0;

 private:
  PolicyDrops& policy_;
  const at::Tensor& oracle_drops_;
};

}  // namespace

TraceEvaluation evaluate_trace(const Transformer& model, const TraceInputs& trace, const EvictionSchedule& schedule,
                               FeatureSet features, const PolicyPreset& preset, const PolicyInputs& inputs,
                               const RewardOptions& reward, uint64_t seed) {
  TraceEvaluation out;
  out.tokens = static_cast<int64_t>(trace.ids.size());
  {
    const auto policy = make_policy(preset, inputs);
    PolicyDrops decider(*policy, features, schedule.interval, sampler(preset, seed));
    const BudgetedRun run = run_budgeted(model, trace.ids, schedule, decider);
    policy->finish();
    out.reward = rollout_reward(trace.nll_full, trace.entropy, run.nll.cpu(), schedule.budget + schedule.interval, reward);
  }
  if (trace.oracle) {
    const auto policy = make_policy(preset, inputs);  // fresh: the random policy restarts its stream
    PolicyDrops choice(*policy, features, schedule.interval, sampler(preset, seed));
    OverlapDrops decider(choice, trace.oracle->drop_slots);
    run_budgeted(model, trace.ids, schedule, decider);
    policy->finish();
    out.overlap_sum = decider.sum;
    out.overlap_rows = decider.rows;
  }
  return out;
}

void PolicyMetrics::add(const TraceEvaluation& e) {
  const auto n = static_cast<double>(e.reward.scored);
  nll_increase_sum_ += e.reward.mean_nll_increase * n;
  spike_sum_ += e.reward.spike_rate * n;
  penalty_sum_ += -e.reward.reward * n;
  scored_ += e.reward.scored;
  overlap_sum_ += e.overlap_sum;
  overlap_rows_ += e.overlap_rows;
  tokens_ += e.tokens;
  ++traces_;
}

std::optional<double> PolicyMetrics::golden_overlap() const {
  if (overlap_rows_ == 0) return std::nullopt;
  return overlap_sum_ / static_cast<double>(overlap_rows_);
}

}  // namespace foresight
