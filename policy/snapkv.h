#pragma once
#include "policy/policy.h"

namespace foresight {

// SnapKV (Li et al., 2024): the attention of the chunk's last `window` queries (the observation
// window, summed over them and over the KV head's query heads), max-pooled over neighbouring
// candidates with `kernel` so that clusters survive together; the lowest goes first.
class SnapKv : public EvictionPolicy {
 public:
  SnapKv(int64_t window = 32, int64_t kernel = 7) : window_(window), kernel_(kernel) {}
  std::string name() const override { return "snapkv"; }
  at::Tensor score(const StepView& view) override;

 private:
  int64_t window_, kernel_;
};

}  // namespace foresight
