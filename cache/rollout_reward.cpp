#include "cache/rollout_reward.h"

#include <ATen/ATen.h>

namespace foresight {

RolloutReward rollout_reward(const at::Tensor& nll_full, const at::Tensor& entropy, const at::Tensor& nll_evict,
                             int64_t offset, const RewardOptions& options) {
  const int64_t n = std::max<int64_t>(0, nll_full.size(0) - offset);
  RolloutReward r;
  if (n == 0) return r;
  const at::Tensor tail_entropy = entropy.slice(0, offset).to(at::kDouble);
  const auto excluded = static_cast<int64_t>(static_cast<double>(n) * options.exclude_fraction);
  const at::Tensor order = std::get<1>(tail_entropy.sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
  const at::Tensor kept = order.slice(0, excluded) + offset;
  const at::Tensor d = nll_full.to(at::kDouble).index_select(0, kept) - nll_evict.to(at::kDouble).index_select(0, kept);
  r.scored = kept.numel();
  if (r.scored == 0) return r;
  const at::Tensor spike = d < -options.threshold;
  r.spike_rate = spike.to(at::kDouble).mean().item<double>();
  r.mean_nll_increase = (-d).mean().item<double>();
  r.reward = options.kind == "mean_nll" ? -r.mean_nll_increase : -(d * d * spike).mean().item<double>();
  return r;
}

}  // namespace foresight
