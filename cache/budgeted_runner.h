#pragma once
#include <ATen/core/Tensor.h>

#include <vector>

#include "cache/budgeted_decoder.h"
#include "cache/schedule.h"

namespace foresight {

class Transformer;

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

// Runs the schedule of DESIGN.md §2 over `ids` with the model frozen, teacher-forced: the whole
// trace goes through the budgeted decoder at once (the initial chunk of B, then chunks of W); after
// each full chunk that more tokens follow, `decider` picks W of the B older slots per layer and KV
// head, and they are dropped. Each layer's cache holds at most B + W entries.
BudgetedRun run_budgeted(const Transformer& model, const std::vector<int64_t>& ids,
                         const EvictionSchedule& schedule, DropDecider& decider);

}  // namespace foresight
