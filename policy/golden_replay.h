#pragma once
#include <ATen/core/Tensor.h>

#include "policy/policy.h"

namespace foresight {

// Golden Eviction replayed (the upper bound): the oracle's scores of one trace at each step,
// float32 [layers, steps, Hkv, B] (higher = drop first), for the oracle's own schedule. Greedy
// top-W of them are the oracle's drops, so a greedy run follows the oracle's trajectory.
class GoldenReplay : public EvictionPolicy {
 public:
  explicit GoldenReplay(at::Tensor oracle_scores) : oracle_scores_(std::move(oracle_scores)) {}
  std::string name() const override { return "golden"; }
  at::Tensor score(const StepView& view) override;

 private:
  at::Tensor oracle_scores_;
};

}  // namespace foresight
