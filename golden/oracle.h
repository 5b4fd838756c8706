#pragma once
#include <ATen/core/Tensor.h>

namespace foresight {

// The eviction schedule of DESIGN.md §2: an initial chunk of `budget` tokens, then chunks of
// `interval`; after each full chunk, `interval` of the `budget` older slots are dropped.
struct EvictionSchedule {
  int64_t budget = 1024;
  int64_t interval = 256;

  // Throws unless 0 < interval < budget and budget is a multiple of interval.
  void validate() const;

  // Eviction steps of a trace: step s runs when chunk s is full and at least one query block
  // follows it, i.e. while length > budget + (s + 1) * interval.
  int64_t steps(int64_t length) const {
    return length > budget + interval ? (length - budget - 1) / interval : 0;
  }
};

struct OracleDrops {
  at::Tensor drop_slots;      // int32 [steps, Hkv, W], ascending, slots of the compacted cache
  at::Tensor drop_positions;  // int32 [steps, Hkv, W], the same drops as absolute token positions
  at::Tensor scores;          // float32 [steps, Hkv, B], -future of every candidate
};

// Golden Eviction (DESIGN.md §3) for one layer, every KV head at once, from its recorded block
// attention [Hkv, L, blocks]. At step s a candidate's future is the max of its attention over
// blocks B/W + 1 + s onward; the W lowest are dropped, ties to the lower slot.
OracleDrops golden_eviction(const at::Tensor& blocks, const EvictionSchedule& schedule);

}  // namespace foresight
