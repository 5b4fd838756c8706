#include "policy/tova.h"

#include <ATen/ATen.h>

namespace foresight {

at::Tensor Tova::score(const StepView& view) {
  const int64_t last = view.attention.size(2) - 1;
  return -view.attention.select(2, last).sum(1);  // [Hkv, G, T, B] -> [Hkv, B]
}

}  // namespace foresight
