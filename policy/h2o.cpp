#include "policy/h2o.h"

#include <ATen/ATen.h>

#include "policy/features.h"

namespace foresight {

at::Tensor H2o::score(const StepView& view) {
  const int64_t group = view.attention.size(1);
  return -feature_statistic(view.features, Statistic::Cum, group).sum(-1);
}

}  // namespace foresight
