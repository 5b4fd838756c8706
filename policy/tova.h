#pragma once
#include "policy/policy.h"

namespace foresight {

// TOVA (Oren et al., 2024): the candidate the newest query attends to least goes first (the
// attention summed over the KV head's query heads).
class Tova : public EvictionPolicy {
 public:
  std::string name() const override { return "tova"; }
  at::Tensor score(const StepView& view) override;
};

}  // namespace foresight
