#include "generate/problems.h"

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/traces.h"

namespace foresight {

namespace {

// `key` as token ids; a missing key is an empty list when `required` is false. An empty list is
// refused either way: an empty answer could only match an empty continuation, and an empty prefix
// would match everywhere.
std::vector<int64_t> token_list(const nlohmann::json& j, const char* key, bool required, const std::string& where) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (required) throw Error(where + ": missing key \"" + key + "\" (expected a non-empty array of token ids)");
    return {};
  }
  std::vector<int64_t> ids;
  if (it->is_array()) {
    for (const auto& v : *it) {
      if (!v.is_number_integer() || v.get<int64_t>() < 0) break;
      ids.push_back(v.get<int64_t>());
    }
  }
  if (!it->is_array() || ids.size() != it->size() || ids.empty()) {
    throw Error(where + ": \"" + key + "\" must be a non-empty array of token ids (non-negative integers)");
  }
  return ids;
}

Problem parse_problem(const nlohmann::json& j, const std::string& id, const std::string& where) {
  Problem p;
  p.id = id;
  p.input_ids = token_list(j, "input_ids", true, where);
  p.answer_ids = token_list(j, "answer_ids", true, where);
  p.answer_prefix_ids = token_list(j, "answer_prefix_ids", false, where);
  return p;
}

}  // namespace

std::vector<Problem> read_problems(const std::string& path) {
  std::vector<Problem> problems;
  read_id_records(path, "problem", [&](const nlohmann::json& j, const std::string& id, const std::string& where) {
    problems.push_back(parse_problem(j, id, where));
  });
  if (problems.empty()) throw Error(path + " holds no problems");
  return problems;
}

}  // namespace foresight
