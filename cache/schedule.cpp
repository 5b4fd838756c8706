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
  if (protect < 0 || protect > budget - interval) {
    throw Error("protect (" + std::to_string(protect) + ") must lie in 0.." + std::to_string(budget - interval) +
                " (budget - interval, so that W unprotected entries can go)");
  }
}

Protect Protect::parse(const std::string& text) {
  if (text == "prompt") return {0, true};
  // Digits only: no sign, no space, no exponent ("+4", " 4" and "1e3" are typos, not counts).
  const bool digits = !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
  int64_t n = -1;
  try {
    if (digits) n = std::stoll(text);
  } catch (const std::out_of_range&) {
    n = -1;
  }
  if (n < 0) {
    throw Error("protect is \"" + text + "\", expected 0, a count of first positions, or \"prompt\"");
  }
  return {n, false};
}

EvictionSchedule Protect::resolve(EvictionSchedule schedule, std::optional<int64_t> prompt_len,
                                  const std::string& what) const {
  if (prompt && !prompt_len) {
    throw Error(what + " has no prompt_len, so protect: prompt cannot tell which positions to keep; give each "
                "trace its prompt_len or protect a count");
  }
  schedule.protect = prompt ? *prompt_len : count;
  const int64_t limit = schedule.budget - schedule.interval;
  if (schedule.protect > limit) {
    const std::string kept = prompt ? "its prompt of " + std::to_string(*prompt_len) + " tokens"
                                    : "the first " + std::to_string(count) + " positions";
    throw Error(what + ": protect " + text() + " would keep " + kept + ", more than budget - interval = " +
                std::to_string(limit) + " (B " + std::to_string(schedule.budget) + ", W " +
                std::to_string(schedule.interval) + "), which leaves fewer than W entries to evict");
  }
  return schedule;
}

}  // namespace foresight
