#include "policy/snapkv.h"

#include <ATen/ATen.h>

namespace foresight {

at::Tensor SnapKv::score(const StepView& view) {
  const int64_t t = view.attention.size(2);
  const at::Tensor votes = view.attention.slice(2, std::max<int64_t>(0, t - window_)).sum({1, 2});  // [Hkv, B]
  const at::Tensor pooled = at::max_pool1d(votes.unsqueeze(1), {kernel_}, {1}, {kernel_ / 2}).squeeze(1);
  return -pooled;
}

}  // namespace foresight
