#pragma once
#include <ATen/core/Generator.h>

#include "policy/policy.h"

namespace foresight {

// Uniformly random drops: the floor any policy must beat. Seeded, so a sweep repeats.
class RandomPolicy : public EvictionPolicy {
 public:
  explicit RandomPolicy(uint64_t seed);
  std::string name() const override { return "random"; }
  at::Tensor score(const StepView& view) override;

 private:
  at::Generator gen_;
};

}  // namespace foresight
