#include "policy/golden_replay.h"

#include "common/error.h"

namespace foresight {

at::Tensor GoldenReplay::score(const StepView& view) {
  if (view.layer >= oracle_scores_.size(0) || view.step >= oracle_scores_.size(1)) {
    throw Error("the oracle's scores cover " + std::to_string(oracle_scores_.size(1)) + " steps; step " +
                std::to_string(view.step) + " was asked for");
  }
  // All steps on the device in one copy, not one (blocking) copy per layer and step.
  if (oracle_scores_.device() != view.positions.device()) oracle_scores_ = oracle_scores_.to(view.positions.device());
  return oracle_scores_[view.layer][view.step];
}

}  // namespace foresight
