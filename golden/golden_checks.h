#pragma once
#include <cstdint>
#include <string>

#include "cache/schedule.h"

namespace foresight {

struct GoldenTrace;

// The values of one golden trace (shapes already checked): every token in 0..vocab-1 (vocab 0:
// unknown, only >= 0 is checked); nll, entropy and oracle scores finite; oracle scores in [-1, 0]
// (each is minus a mean of attention probabilities); stored attention finite and in [0, 1]; and
// in every (layer, KV head) the drops a replay of the schedule implies: each step's slots in
// 0..B-1, strictly ascending (no slot twice), with drop_positions the positions those slots hold
// when the cache starts as 0..B-1 and after each step keeps its survivors in order and appends the
// chunk's W new positions. Throws an Error naming `where` (file and trace), the dataset, the
// index and what was expected. Linear in the trace's size, and cheap next to reading it.
void check_golden_values(const GoldenTrace& trace, const EvictionSchedule& schedule, int64_t vocab,
                         const std::string& where);

}  // namespace foresight
