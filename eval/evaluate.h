#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <limits>
#include <optional>
#include <vector>

#include "cache/rollout_reward.h"
#include "cache/schedule.h"
#include "policy/features.h"
#include "policy/registry.h"

namespace foresight {

class Transformer;

// Golden Eviction for one trace at one schedule: its drops and scores.
struct OracleTrace {
  at::Tensor drop_slots;     // int32 [layers, steps, Hkv, W]
  at::Tensor oracle_scores;  // float32 [layers, steps, Hkv, B]
};

// One policy on one trace at one schedule.
struct TraceEvaluation {
  RolloutReward reward;          // the GRPO reward's metrics over positions >= B + W
  double overlap_sum = 0;        // sum over (layer, step, KV head) of |policy drops ∩ oracle drops| / W
  int64_t overlap_rows = 0;      // 0 when the oracle is not known for this schedule
  int64_t tokens = 0;
};

struct TraceInputs {
  const std::vector<int64_t>& ids;
  const at::Tensor& nll_full;   // float32 [L-1]
  const at::Tensor& entropy;    // float32 [L-1]
  std::optional<OracleTrace> oracle;
};

// Runs the schedule over the trace with the policy's drops (greedy top-W, or sampled from the top
// 2W with a generator seeded by `seed`) and scores the resulting NLL as the GRPO reward does.
// When the oracle is known, a second, teacher-forced pass on the oracle's trajectory measures how
// many of the oracle's drops the policy would have chosen (SFT's golden overlap).
TraceEvaluation evaluate_trace(const Transformer& model, const TraceInputs& trace, const EvictionSchedule& schedule,
                               FeatureSet features, const PolicyPreset& preset, const PolicyInputs& inputs,
                               const RewardOptions& reward, uint64_t seed);

// Metrics of one policy at one schedule, pooled over every scored position of every trace (a
// trace weighs by its scored positions), and the golden overlap over every oracle step. With no
// scored position (every trace too short for the schedule) the per-position metrics are NaN.
class PolicyMetrics {
 public:
  void add(const TraceEvaluation& e);

  double mean_nll_increase() const { return per_position(nll_increase_sum_); }
  double spike_rate() const { return per_position(spike_sum_); }
  double penalty() const { return per_position(penalty_sum_); }  // the GRPO penalty, -reward
  std::optional<double> golden_overlap() const;
  int64_t scored() const { return scored_; }
  int64_t tokens() const { return tokens_; }
  int64_t traces() const { return traces_; }

 private:
  double per_position(double sum) const {
    return scored_ ? sum / static_cast<double>(scored_) : std::numeric_limits<double>::quiet_NaN();
  }

  double nll_increase_sum_ = 0, spike_sum_ = 0, penalty_sum_ = 0, overlap_sum_ = 0;
  int64_t scored_ = 0, tokens_ = 0, traces_ = 0, overlap_rows_ = 0;
};

}  // namespace foresight
