#pragma once
#include <ATen/core/Tensor.h>

#include "cache/schedule.h"

namespace foresight {

struct OracleDrops {
  at::Tensor drop_slots;      // int32 [steps, Hkv, W], ascending, slots of the compacted cache
  at::Tensor drop_positions;  // int32 [steps, Hkv, W], the same drops as absolute token positions
  at::Tensor scores;          // float32 [steps, Hkv, B], -future of every candidate
};

// Golden Eviction (DESIGN.md §3) for one layer, every KV head at once, from its recorded block
// attention [Hkv, L, blocks]. At step s a candidate's future is the max of its attention over
// blocks B/W + 1 + s onward; the W lowest are dropped, ties to the lower slot. The first
// schedule.protect positions are never dropped; their scores are recorded all the same.
OracleDrops golden_eviction(const at::Tensor& blocks, const EvictionSchedule& schedule);

}  // namespace foresight
