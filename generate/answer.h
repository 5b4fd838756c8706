#pragma once
#include <cstdint>
#include <optional>
#include <vector>

namespace foresight {

// The final answer of a generated continuation, as token ids: the run after the last occurrence
// of `prefix` (an answer marker such as the tokens of "The answer is"), up to the first stop id or
// the end. Without a prefix, the whole continuation up to the first stop id. None when the prefix
// never occurs before the first stop id: the model gave no answer.
std::optional<std::vector<int64_t>> final_answer(const std::vector<int64_t>& continuation,
                                                 const std::vector<int64_t>& prefix,
                                                 const std::vector<int64_t>& stop_ids);

// The share of `answer`'s tokens the final answer has at the same place (0 without an answer): a
// reward with partial credit, so that rollouts which get part of a multi-part answer right are told
// apart from those that get none. 1 exactly when the answer is right.
double answer_token_fraction(const std::vector<int64_t>& continuation, const std::vector<int64_t>& prefix,
                             const std::vector<int64_t>& stop_ids, const std::vector<int64_t>& answer);

// Whether the final answer is exactly `answer`.
bool answer_is_correct(const std::vector<int64_t>& continuation, const std::vector<int64_t>& prefix,
                       const std::vector<int64_t>& stop_ids, const std::vector<int64_t>& answer);

}  // namespace foresight
