#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace foresight {

// One task of a generation-mode evaluation, a line of problems JSONL:
// {"id", "input_ids" (the prompt), "answer_ids", "answer_prefix_ids"?}. Other keys (the answer as
// text, for eval/score_text_answers.py) are ignored here.
struct Problem {
  std::string id;
  std::vector<int64_t> input_ids;
  std::vector<int64_t> answer_ids;
  std::vector<int64_t> answer_prefix_ids;  // empty: the answer is the whole continuation
};

// Reads a whole problems file. Errors name the file, the 1-based line and the key; ids are unique
// (numeric ids are kept as their decimal text) and a file without problems is refused.
std::vector<Problem> read_problems(const std::string& path);

}  // namespace foresight
