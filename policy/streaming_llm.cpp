#include "policy/streaming_llm.h"

#include <ATen/ATen.h>

namespace foresight {

at::Tensor StreamingLlm::score(const StepView& view) {
  return -view.positions.to(at::kFloat);  // older = more evictable
}

}  // namespace foresight
