#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

#include "cache/schedule.h"

namespace foresight {

struct GoldenTrace;

// Golden Eviction for another schedule from the block attention a golden file keeps
// (keep_attention), as `foresight-golden evict` and `foresight-eval` at a B/W other than the
// recorded one need it.

// Coarser blocks from finer ones: a W' = m * W block's mean is the mean of its m block means
// (missing blocks past the end count as zero rows, as the padding rule wants). float32 out.
at::Tensor merge_blocks(const at::Tensor& attention, int64_t m);

// Why `schedule` cannot be replayed from attention recorded in blocks of `recorded_interval`
// (its interval is not a multiple of it), or "" when it can.
std::string reevict_refusal(int64_t recorded_interval, const EvictionSchedule& schedule);

// Fills trace's drop_slots, drop_positions and oracle_scores for `schedule` from its stored
// attention [layers, Hkv, L, ceil(L / recorded_interval)]; throws what reevict_refusal says.
void reevict(GoldenTrace& trace, int64_t recorded_interval, const EvictionSchedule& schedule);

}  // namespace foresight
