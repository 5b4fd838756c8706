#pragma once
#include <ATen/core/Tensor.h>

#include <vector>

#include "cache/cache_step.h"
#include "cache/schedule.h"

namespace foresight {

class Transformer;

// Chooses the W slots to drop at one eviction step of one layer: int64 [Hkv, W], each < B.
// Policies decide through policy/policy_drops.h, which turns the step into their features.
class DropDecider {
 public:
  virtual ~DropDecider() = default;
  virtual at::Tensor decide(const CacheStep& step) = 0;
};

// Teacher forcing: the oracle's drops, int32 [layers, steps, Hkv, W] from a golden file.
class ForcedDrops : public DropDecider {
 public:
  explicit ForcedDrops(at::Tensor drop_slots) : drop_slots_(std::move(drop_slots)) {}
  at::Tensor decide(const CacheStep& step) override;

 private:
  at::Tensor drop_slots_;
};

struct BudgetedRun {
  at::Tensor nll;             // float32 [L-1]: next-token NLL under eviction
  at::Tensor drop_slots;      // int32 [layers, steps, Hkv, W]
  at::Tensor drop_positions;  // int32 [layers, steps, Hkv, W]
};

// Runs the schedule of DESIGN.md §2 over `ids` with the model frozen: the initial chunk of B,
// then chunks of W through per-layer budgeted caches; after each full chunk that more tokens
// follow, `decider` picks W of the B older slots per layer and KV head, and they are dropped. Each
// layer's cache holds at most B + W entries.
BudgetedRun run_budgeted(const Transformer& model, const std::vector<int64_t>& ids,
                         const EvictionSchedule& schedule, DropDecider& decider);

}  // namespace foresight
