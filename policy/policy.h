#pragma once
#include <ATen/core/Tensor.h>

#include <string>

namespace foresight {

// What a policy sees at one eviction step of one layer: the B candidates (the older cache slots).
struct StepView {
  int64_t layer = 0;
  int64_t step = 0;
  at::Tensor features;   // float32 [Hkv, B, F]: [K | V | 8G statistics], detached (policy/features.h)
  at::Tensor positions;  // int64 [Hkv, B]: absolute token positions of the candidates
  at::Tensor attention;  // float32 [Hkv, G, W, B]: the chunk's attention on the candidates
  int64_t protect = 0;   // slots below this hold protected entries (DESIGN.md §2): they are never dropped
};

// Ranks the candidates at a step: evictability scores [Hkv, B], higher = drop first. The learned
// scorer is one implementation; heuristic baselines are others.
class EvictionPolicy {
 public:
  virtual ~EvictionPolicy() = default;
  virtual std::string name() const = 0;
  virtual at::Tensor score(const StepView& view) = 0;
  // Called once its run is over (a decoded prompt, an evaluated trace), before the result is used.
  // A policy that checks its scores on the device, rather than read them back at every step,
  // raises what it found here.
  virtual void finish() {}
};

}  // namespace foresight
