#pragma once
#include <cstdint>
#include <vector>

#include "rl/rollout.h"

namespace foresight {

struct UpdateOptions {
  double epsilon = 0.2;  // PPO clip
  double beta = 0.05;    // KL weight this step
  LogprobKind logprob = LogprobKind::PerDrop;
};

// What one rollout's update contributed, for the metrics: `loss` is the weighted objective; `kl`
// and `clip` are sums over layers of the layer's mean, so dividing by `layers` gives means.
struct UpdateStats {
  double loss = 0, kl = 0, clip = 0;
  int64_t layers = 0;
  // Wall seconds this process spent in the scorer (forward and backward) during the update; the
  // rest of a replayed update is the model pass that rebuilds the features. Not summed over ranks.
  double scorer_seconds = 0;

  UpdateStats& operator+=(const UpdateStats& o);
};

// Backpropagates weight * sum over layers of [mean over the layer's terms of the clipped surrogate
// + beta * mean KL] (DESIGN.md §6) into `policy`'s gradients, for one rollout with `advantage`.
// The scorer's inputs come from the features the rollout kept: the model is not run.
UpdateStats backprop_kept(LearnedScorer& policy, const Rollout& rollout, double advantage,
                          const UpdateOptions& options, double weight);

// The same objective when the rollout did not keep its features: the model re-runs the trace with
// the rollout's drops forced, which rebuilds the very same caches and features step by step.
UpdateStats backprop_replayed(const Transformer& model, const std::vector<int64_t>& ids, const RolloutOptions& rollout_options,
                              LearnedScorer& policy, const Rollout& rollout, double advantage,
                              const UpdateOptions& options, double weight);

}  // namespace foresight
