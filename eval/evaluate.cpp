#include "eval/evaluate.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "cache/budgeted_runner.h"
#include "policy/drop_selection.h"

namespace foresight {

namespace {

// The policy's drops at a step: greedy top-W, or sampled from the top 2W.
class Chooser {
 public:
  Chooser(EvictionPolicy& policy, int64_t interval, bool sampled, uint64_t seed)
      : policy_(policy), interval_(interval) {
    if (sampled) gen_ = at::make_generator<at::CPUGeneratorImpl>(seed);
  }
  at::Tensor choose(const StepView& view) {
    const at::Tensor scores = policy_.score(view);
    return gen_ ? sample_w(scores, interval_, *gen_) : top_w(scores, interval_);
  }

 private:
  EvictionPolicy& policy_;
  int64_t interval_;
  std::optional<at::Generator> gen_;
};

class ChooserDrops : public DropDecider {
 public:
  explicit ChooserDrops(Chooser& chooser) : chooser_(chooser) {}
  at::Tensor decide(const StepView& view) override { return chooser_.choose(view); }

 private:
  Chooser& chooser_;
};

// Teacher forcing on the oracle's trajectory; counts how many of its drops the policy picks.
class OverlapDrops : public DropDecider {
 public:
  OverlapDrops(Chooser& chooser, const at::Tensor& oracle_drops) : chooser_(chooser), oracle_drops_(oracle_drops) {}
  at::Tensor decide(const StepView& view) override {
    const at::Tensor oracle = oracle_drops_[view.layer][view.step].to(view.positions.device(), at::kLong);
    const at::Tensor mine = chooser_.choose(view);
    const at::Tensor hits = (mine.unsqueeze(2) == oracle.unsqueeze(1)).any(2).sum(1);  // [Hkv]
    sum += (hits.to(at::kDouble) / static_cast<double>(oracle.size(1))).sum().item<double>();
    rows += oracle.size(0);
    return oracle;
  }
  double sum = 0;
  int64_t rows = 0;

 private:
  Chooser& chooser_;
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
    Chooser chooser(*policy, schedule.interval, preset.sampled, seed);
    ChooserDrops decider(chooser);
    const BudgetedRun run = run_budgeted(model, trace.ids, schedule, features, decider);
    out.reward = rollout_reward(trace.nll_full, trace.entropy, run.nll.cpu(), schedule.budget + schedule.interval, reward);
  }
  if (trace.oracle) {
    const auto policy = make_policy(preset, inputs);  // fresh: the random policy restarts its stream
    Chooser chooser(*policy, schedule.interval, preset.sampled, seed);
    OverlapDrops decider(chooser, trace.oracle->drop_slots);
    run_budgeted(model, trace.ids, schedule, features, decider);
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
