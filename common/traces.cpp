#include "common/traces.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "common/error.h"

namespace foresight {

namespace {

Trace parse_trace(const nlohmann::json& j, const std::string& id, const std::string& where) {
  Trace t;
  t.id = id;
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

void read_id_records(const std::string& path, const std::string& kind,
                     const std::function<void(const nlohmann::json&, const std::string&, const std::string&)>& parse) {
  std::ifstream in(path);
  if (!in) throw Error("cannot open " + kind + " file " + path);
  std::set<std::string> seen;
  std::string line;
  for (int64_t line_no = 1; std::getline(in, line); ++line_no) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(line_no);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception&) {
      throw Error(where + ": not valid JSON");
    }
    if (!j.is_object()) throw Error(where + ": expected a JSON object");
    const auto id = j.find("id");
    if (id == j.end()) throw Error(where + ": missing key \"id\"");
    std::string text;
    if (id->is_string()) {
      text = id->get<std::string>();
    } else if (id->is_number_integer()) {
      text = std::to_string(id->get<int64_t>());
    } else {
      throw Error(where + ": \"id\" must be a string or an integer");
    }
    if (!seen.insert(text).second) throw Error(where + ": " + kind + " id \"" + text + "\" repeats");
    parse(j, text, where);
  }
  if (in.bad()) throw Error("cannot read " + kind + " file " + path);
}

std::vector<Trace> read_traces(const std::string& path) {
  std::vector<Trace> traces;
  read_id_records(path, "trace", [&](const nlohmann::json& j, const std::string& id, const std::string& where) {
    traces.push_back(parse_trace(j, id, where));
  });
  return traces;
}

std::string trace_to_json(const Trace& trace) {
  nlohmann::json j = {{"id", trace.id}, {"input_ids", trace.input_ids}};
  if (trace.prompt_len) j["prompt_len"] = *trace.prompt_len;
  return j.dump();
}

}  // namespace foresight
