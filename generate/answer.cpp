#include "generate/answer.h"

#include <algorithm>

namespace foresight {

std::optional<std::vector<int64_t>> final_answer(const std::vector<int64_t>& continuation,
                                                 const std::vector<int64_t>& prefix,
                                                 const std::vector<int64_t>& stop_ids) {
  // A sample ends on its first stop id, so nothing after one is part of what the model said.
  const auto end = std::find_first_of(continuation.begin(), continuation.end(), stop_ids.begin(), stop_ids.end());
  auto start = continuation.begin();
  if (!prefix.empty()) {
    // The last marker: reasoning models restate candidate answers before the final one.
    const auto last = std::find_end(continuation.begin(), end, prefix.begin(), prefix.end());
    if (last == end) return std::nullopt;
    start = last + static_cast<std::ptrdiff_t>(prefix.size());
  }
  return std::vector<int64_t>(start, end);
}

bool answer_is_correct(const std::vector<int64_t>& continuation, const std::vector<int64_t>& prefix,
                       const std::vector<int64_t>& stop_ids, const std::vector<int64_t>& answer) {
  const auto got = final_answer(continuation, prefix, stop_ids);
  return got && *got == answer;
}

double answer_token_fraction(const std::vector<int64_t>& continuation, const std::vector<int64_t>& prefix,
                             const std::vector<int64_t>& stop_ids, const std::vector<int64_t>& answer) {
  const auto got = final_answer(continuation, prefix, stop_ids);
  if (!got) return 0;
  // Extra or missing tokens count against it: the longer of the two is the denominator.
  const std::size_t longest = std::max(got->size(), answer.size());
  if (longest == 0) return 1;  // an empty answer, given
  std::size_t same = 0;
  for (std::size_t i = 0; i < std::min(got->size(), answer.size()); ++i) same += (*got)[i] == answer[i];
  return static_cast<double>(same) / static_cast<double>(longest);
}

}  // namespace foresight
