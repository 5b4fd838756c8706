#include "common/traces.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "common/error.h"

namespace foresight {

namespace {

Trace parse_trace(const std::string& line, const std::string& where) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(line);
  } catch (const nlohmann::json::exception&) {
    throw Error(where + ": not valid JSON");
  }
  if (!j.is_object()) throw Error(where + ": expected a JSON object");
  Trace t;
  const auto id = j.find("id");
  if (id == j.end()) throw Error(where + ": missing key \"id\"");
  if (id->is_string()) {
    t.id = id->get<std::string>();
  } else if (id->is_number_integer()) {
    t.id = std::to_string(id->get<int64_t>());
  } else {
    throw Error(where + ": \"id\" must be a string or an integer");
  }
  const auto ids = j.find("input_ids");
  if (ids == j.end() || !ids->is_array()) {
    throw Error(where + ": \"input_ids\" must be an array of integers");
  }
  t.input_ids.reserve(ids->size());
  for (const auto& v : *ids) {
    if (!v.is_number_integer()) throw Error(where + ": \"input_ids\" must be an array of integers");
    t.input_ids.push_back(v.get<int64_t>());
  }
  const auto pl = j.find("prompt_len");
  if (pl != j.end() && !pl->is_null()) {
    if (!pl->is_number_integer()) throw Error(where + ": \"prompt_len\" must be an integer");
    t.prompt_len = pl->get<int64_t>();
    if (*t.prompt_len < 0 || *t.prompt_len > static_cast<int64_t>(t.input_ids.size())) {
      throw Error(where + ": \"prompt_len\" " + std::to_string(*t.prompt_len) +
                  " is outside [0, len(input_ids)]");
    }
  }
  return t;
}

}  // namespace

std::vector<Trace> read_traces(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error("cannot open trace file " + path);
  std::vector<Trace> traces;
  std::set<std::string> seen;
  std::string line;
  for (int64_t line_no = 1; std::getline(in, line); ++line_no) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(line_no);
    Trace t = parse_trace(line, where);
    if (!seen.insert(t.id).second) throw Error(where + ": trace id \"" + t.id + "\" repeats");
    traces.push_back(std::move(t));
  }
  return traces;
}

std::string trace_to_json(const Trace& trace) {
  nlohmann::json j = {{"id", trace.id}, {"input_ids", trace.input_ids}};
  if (trace.prompt_len) j["prompt_len"] = *trace.prompt_len;
  return j.dump();
}

}  // namespace foresight
