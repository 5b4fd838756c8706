#pragma once
#include "policy/policy.h"

namespace foresight {

// StreamingLLM (Xiao et al., 2023): the oldest candidate is dropped first, so the most recent stay.
// Its attention sinks, the first tokens it always keeps, are the schedule's `protect` (DESIGN.md
// §2), 4 by default for this policy (PolicyPreset::default_protect).
class StreamingLlm : public EvictionPolicy {
 public:
  std::string name() const override { return "streaming_llm"; }
  at::Tensor score(const StepView& view) override;
};

}  // namespace foresight
