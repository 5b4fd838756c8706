#include "policy/rkv.h"

#include <ATen/ATen.h>

#include "policy/features.h"

namespace foresight {

at::Tensor Rkv::score(const StepView& view) {
  const at::Tensor attention = view.attention.sum({1, 2});  // [Hkv, B]
  const at::Tensor importance = attention / attention.sum(-1, true).clamp_min(1e-12);
  const at::Tensor keys = feature_keys(view.features, view.attention.size(1));
  const at::Tensor unit = keys / keys.norm(2, -1, true).clamp_min(1e-12);
  const at::Tensor similarity = at::matmul(unit, unit.transpose(1, 2));  // [Hkv, B, B]
  const int64_t b = keys.size(1);
  const at::Tensor mean_other = (similarity.sum(-1) - similarity.diagonal(0, 1, 2)) / static_cast<double>(b - 1);
  const at::Tensor redundancy = at::softmax(mean_other, -1);
  return -(lambda_ * importance - (1 - lambda_) * redundancy);
}

}  // namespace foresight
