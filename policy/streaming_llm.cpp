#include "policy/streaming_llm.h"

#include <ATen/ATen.h>

#include <limits>

namespace foresight {

at::Tensor StreamingLlm::score(const StepView& view) {
  const at::Tensor age = -view.positions.to(at::kFloat);  // older = more evictable
  return age.masked_fill(view.positions < sinks_, -std::numeric_limits<float>::infinity());
}

}  // namespace foresight
