#pragma once
#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

namespace foresight {

// Greedy: the `w` highest scores per row of [Hkv, B] (ties to the lower slot), as ascending slots.
at::Tensor top_w(const at::Tensor& scores, int64_t w);

// Sampled (DESIGN.md §6): among the 2w highest scores per row, softmax, then `w` drawn without
// replacement with `gen`; ascending slots [Hkv, w].
at::Tensor sample_w(const at::Tensor& scores, int64_t w, at::Generator& gen);

}  // namespace foresight
