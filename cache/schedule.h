#pragma once
#include <cstdint>

namespace foresight {

// The eviction schedule of DESIGN.md §2, shared by every stage: an initial chunk of `budget`
// tokens, then chunks of `interval`; after each full chunk that more tokens follow, `interval` of
// the `budget` older slots are dropped.
struct EvictionSchedule {
  int64_t budget = 1024;
  int64_t interval = 256;

  // Throws unless 0 < interval < budget and budget is a multiple of interval.
  void validate() const;

  // Eviction steps of a trace: step s runs when chunk s is full and at least one token (one
  // query block) follows it, i.e. while length > budget + (s + 1) * interval.
  int64_t steps(int64_t length) const {
    return length > budget + interval ? (length - budget - 1) / interval : 0;
  }
};

}  // namespace foresight
