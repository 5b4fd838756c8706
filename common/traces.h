#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace foresight {

// One reasoning trace as stored in trace JSONL (DESIGN.md §8):
// {"id": ..., "input_ids": [...], "prompt_len": n}, prompt_len optional.
struct Trace {
  std::string id;
  std::vector<int64_t> input_ids;
  std::optional<int64_t> prompt_len;
};

// Reads a whole trace JSONL file. Errors name the file and the 1-based line. Blank lines are
// skipped; ids must be unique (numeric ids are kept as their decimal text).
std::vector<Trace> read_traces(const std::string& path);

// One JSONL line (no trailing newline).
std::string trace_to_json(const Trace& trace);

}  // namespace foresight
