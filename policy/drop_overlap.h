#pragma once
#include <ATen/core/Tensor.h>

namespace foresight {

// |chosen ∩ reference| / W per row of two drop sets [R, W] (slots, any order): float32 [R]. The
// golden overlap of SFT's metrics and of the evaluation.
at::Tensor drop_overlap(const at::Tensor& chosen, const at::Tensor& reference);

}  // namespace foresight
