#pragma once
#include "policy/policy.h"

namespace foresight {

// R-KV (Cai et al., 2025), for reasoning traces: keep = lambda * importance - (1 - lambda) *
// redundancy. Importance is the chunk's attention on the candidate (over its queries and the KV
// head's query heads), normalised to sum 1; redundancy is the candidate key's mean cosine
// similarity to the other candidates' keys, softmax-normalised. Repeated content goes first.
class Rkv : public EvictionPolicy {
 public:
  explicit Rkv(double lambda = 0.1) : lambda_(lambda) {}
  std::string name() const override { return "rkv"; }
  at::Tensor score(const StepView& view) override;

 private:
  double lambda_;
};

}  // namespace foresight
