#pragma once
#include <cstdint>
#include <optional>
#include <string>

namespace foresight {

// The eviction schedule of DESIGN.md §2, shared by every stage: an initial chunk of `budget`
// tokens, then chunks of `interval`; after each full chunk that more tokens follow, `interval` of
// the `budget` older slots are dropped. The first `protect` positions are never dropped: they stay
// in the first `protect` slots for good (survivors keep their order), inside the budget.
struct EvictionSchedule {
  int64_t budget = 1024;
  int64_t interval = 256;
  int64_t protect = 0;  // resolved for one trace (Protect::resolve)

  // Throws unless 0 < interval < budget, budget is a multiple of interval, and
  // 0 <= protect <= budget - interval (W unprotected candidates must remain).
  void validate() const;

  // Eviction steps of a trace: step s runs when chunk s is full and at least one token (one
  // query block) follows it, i.e. while length > budget + (s + 1) * interval.
  int64_t steps(int64_t length) const {
    return length > budget + interval ? (length - budget - 1) / interval : 0;
  }
};

// `protect` as configured (DESIGN.md §2): the first `count` positions, or the whole prompt, which
// is a different number of positions for each trace.
struct Protect {
  int64_t count = 0;
  bool prompt = false;

  // "prompt" or a count >= 0; anything else throws, naming what is expected.
  static Protect parse(const std::string& text);
  std::string text() const { return prompt ? "prompt" : std::to_string(count); }
  bool operator==(const Protect& other) const { return count == other.count && prompt == other.prompt; }
  bool operator!=(const Protect& other) const { return !(*this == other); }

  // `schedule` with this protect resolved for one trace or prompt, named by `what`, whose prompt
  // is `prompt_len` tokens (nullopt: not known). Throws for `prompt` without a prompt length, and
  // when more than budget - interval positions would be protected; the message names `what`, the
  // prompt's length and the limit.
  EvictionSchedule resolve(EvictionSchedule schedule, std::optional<int64_t> prompt_len, const std::string& what) const;
};

}  // namespace foresight
