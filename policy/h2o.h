#pragma once
#include "policy/policy.h"

namespace foresight {

// H2O (Zhang et al., 2023): the heavy hitters stay; the candidate with the least attention
// accumulated over every query so far (summed over the KV head's query heads) goes first.
class H2o : public EvictionPolicy {
 public:
  std::string name() const override { return "h2o"; }
  at::Tensor score(const StepView& view) override;
};

}  // namespace foresight
