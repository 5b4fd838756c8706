#include "policy/drop_overlap.h"

#include <ATen/ATen.h>

namespace foresight {

at::Tensor drop_overlap(const at::Tensor& chosen, const at::Tensor& reference) {
  const at::Tensor hit = (chosen.unsqueeze(2) == reference.to(chosen.scalar_type()).unsqueeze(1)).any(2);
  return hit.to(at::kFloat).sum(1) / static_cast<double>(reference.size(1));
}

}  // namespace foresight
