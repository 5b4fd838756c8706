#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "rl/policy_update.h"
#include "rl/rollout.h"

namespace foresight {

// The GRPO update of one rollout without replay, for num_iterations 1. At a step's first update
// the policy is the one that drew the rollout, so every ratio is 1 and no term clips: the clipped
// surrogate's gradient is -advantage * grad(mean log p) per layer, linear in the advantage. This
// takes that gradient at advantage 1 while the rollout runs, into a buffer of its own, and the KL
// term's gradient (which needs no advantage) straight into the policy's gradients; each step's
// scorer graph is freed as soon as it is backpropagated. apply() adds advantage * the buffer once
// the group's rewards are in. The sum equals backprop_kept's on the same rollout.
class ExactGradient : public RolloutGradient {
 public:
  // `steps` is the number of eviction steps every layer takes (EvictionSchedule::steps of the
  // trace): a layer's terms are averaged over the whole rollout, so each step needs the count.
  ExactGradient(LearnedScorer& policy, int64_t steps, const UpdateOptions& options, double weight);

  void step(int64_t layer, const at::Tensor& logp, const RolloutStep& step) override;

  // Adds advantage * the surrogate's gradient into the policy's gradients, frees the buffer, and
  // returns what backprop_kept reports for this rollout (clip 0: nothing clips at ratio 1).
  UpdateStats apply(double advantage);

 private:
  std::vector<at::Tensor> params_, surrogate_;  // surrogate_: the gradient at advantage 1
  std::vector<int64_t> steps_seen_;             // per layer
  std::vector<at::Tensor> kl_;                  // per layer: mean KL over its terms so far, on the device (no sync per step)
  int64_t steps_;
  UpdateOptions options_;
  double weight_;
};

}  // namespace foresight
