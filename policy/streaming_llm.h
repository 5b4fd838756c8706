#pragma once
#include "policy/policy.h"

namespace foresight {

// StreamingLLM (Xiao et al., 2023): keeps the first `sinks` tokens (attention sinks) and the most
// recent ones, so the oldest candidate after the sinks is dropped first.
class StreamingLlm : public EvictionPolicy {
 public:
  explicit StreamingLlm(int64_t sinks = 4) : sinks_(sinks) {}
  std::string name() const override { return "streaming_llm"; }
  at::Tensor score(const StepView& view) override;

 private:
  int64_t sinks_;
};

}  // namespace foresight
