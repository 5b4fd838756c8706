#include "eval/problems.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "common/error.h"

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

Problem parse_problem(const std::string& line, const std::string& where) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(line);
  } catch (const nlohmann::json::exception&) {
    throw Error(where + ": not valid JSON");
  }
  if (!j.is_object()) throw Error(where + ": expected a JSON object");
  Problem p;
  const auto id = j.find("id");
  if (id == j.end()) throw Error(where + ": missing key \"id\"");
  if (id->is_string()) {
    p.id = id->get<std::string>();
  } else if (id->is_number_integer()) {
    p.id = std::to_string(id->get<int64_t>());
  } else {
    throw Error(where + ": \"id\" must be a string or an integer");
  }
  p.input_ids = token_list(j, "input_ids", true, where);
  p.answer_ids = token_list(j, "answer_ids", true, where);
  p.answer_prefix_ids = token_list(j, "answer_prefix_ids", false, where);
  return p;
}

}  // namespace

std::vector<Problem> read_problems(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error("cannot open problems file " + path);
  std::vector<Problem> problems;
  std::set<std::string> seen;
  std::string line;
  for (int64_t line_no = 1; std::getline(in, line); ++line_no) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(line_no);
    Problem p = parse_problem(line, where);
    if (!seen.insert(p.id).second) throw Error(where + ": problem id \"" + p.id + "\" repeats");
    problems.push_back(std::move(p));
  }
  if (in.bad()) throw Error("cannot read problems file " + path);
  if (problems.empty()) throw Error(path + " holds no problems");
  return problems;
}

}  // namespace foresight
