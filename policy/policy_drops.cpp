#include "policy/policy_drops.h"

#include <ATen/ATen.h>

#include "kernels/drop_selection.h"

namespace foresight {

StepView step_view(const CacheStep& step, FeatureSet set) {
  return {step.layer, step.step, candidate_features(step, set), step.positions, step.attention, step.protect};
}

at::Tensor PolicyDrops::decide_view(const StepView& view) {
  const at::Tensor scores = mask_protected(policy_.score(view), view.protect);
  return sampler_ ? sample_w(scores, interval_, *sampler_) : top_w(scores, interval_);
}

}  // namespace foresight
