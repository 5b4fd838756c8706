#include "cache/schedule.h"

#include <string>

#include "common/error.h"

namespace foresight {

void EvictionSchedule::validate() const {
  if (interval <= 0 || budget <= 0) throw Error("budget and interval must be positive");
  if (interval >= budget) {
    throw Error("interval (" + std::to_string(interval) + ") must be smaller than budget (" +
                std::to_string(budget) + ")");
  }
  if (budget % interval != 0) {
    throw Error("budget (" + std::to_string(budget) + ") must be a multiple of interval (" +
                std::to_string(interval) + ")");
  }
}

}  // namespace foresight
