#pragma once
#include <ATen/core/Tensor.h>

#include <string>

namespace foresight {

// DESIGN.md §6's reward of one budgeted run against the full cache, from per-position NLL (index t
// predicts token t+1). GRPO's rollouts and the evaluation's metrics share it, so it lives below both.
struct RewardOptions {
  std::string kind = "spike";     // spike: -mean(d^2 [d < -threshold]); mean_nll: -mean(nll_evict - nll_full)
  double threshold = 1.5;         // nats of NLL increase that count as a spike
  double exclude_fraction = 0.2;  // highest full-cache-entropy share of positions left out
  int64_t offset = -1;            // first scored position; -1 means budget + interval
};

struct RolloutReward {
  double reward = 0;
  double spike_rate = 0;         // share of scored positions with d < -threshold
  double mean_nll_increase = 0;  // mean of nll_evict - nll_full over scored positions
  int64_t scored = 0;            // positions scored
};

// d = nll_full - nll_evict over positions t >= offset, after leaving out the floor(fraction * n)
// positions of highest full-cache entropy (ties: the earlier position is left out first).
RolloutReward rollout_reward(const at::Tensor& nll_full, const at::Tensor& entropy, const at::Tensor& nll_evict,
                             int64_t offset, const RewardOptions& options);

}  // namespace foresight
