#include "policy/random_policy.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

namespace foresight {

RandomPolicy::RandomPolicy(uint64_t seed) : gen_(at::make_generator<at::CPUGeneratorImpl>(seed)) {}

at::Tensor RandomPolicy::score(const StepView& view) {
  return at::rand(view.positions.sizes(), gen_, at::kFloat).to(view.positions.device());
}

}  // namespace foresight
