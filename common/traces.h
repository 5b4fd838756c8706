#pragma once
#include <cstdint>
#include <functional>
#include <nlohmann/json_fwd.hpp>
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

// Reads a JSONL file of objects that each carry a unique "id" (a string, or an integer kept as its
// decimal text), skipping blank lines: `parse` gets each object, its id and "FILE:LINE" for its
// errors. `kind` names the records in errors ("trace id \"a\" repeats"). Trace and problem files
// both read this way.
void read_id_records(const std::string& path, const std::string& kind,
                     const std::function<void(const nlohmann::json& record, const std::string& id,
                                              const std::string& where)>& parse);

// Reads a whole trace JSONL file. Errors name the file and the 1-based line. Blank lines are
// skipped; ids must be unique (numeric ids are kept as their decimal text).
std::vector<Trace> read_traces(const std::string& path);

// One JSONL line (no trailing newline).
std::string trace_to_json(const Trace& trace);

}  // namespace foresight
