#include "eval/sweep_files.h"

#include <cstdio>
#include <fstream>
#include <sstream>

#include "common/atomic_output.h"
#include "common/error.h"
#include "common/sha256.h"
#include "common/text_file.h"

namespace foresight {

namespace fs = std::filesystem;

std::string schedule_folder(const EvictionSchedule& s) {
  char name[48];
  std::snprintf(name, sizeof name, "B%lld_W%lld", static_cast<long long>(s.budget), static_cast<long long>(s.interval));
  return name;
}

bool cell_is_done(const fs::path& dir, const std::string& config_text) {
  return fs::exists(dir / "result.json") && read_text(dir / "config.yaml") == config_text;
}

void begin_cell(const fs::path& dir, const std::string& config_text) {
  fs::create_directories(dir);
  remove_stale_temporaries(dir);
  AtomicOutput out((dir / "config.yaml").string());
  write_text_file(out.temp_path(), config_text);
  out.commit();
}

std::string content_line(const std::string& key, const std::vector<std::string>& files) {
  std::string line = key + ":";
  for (const std::string& file : files) line += " " + sha256_file_hex(file);
  return line + "\n";
}

std::string scorer_content_line(const std::string& scorer_dir) {
  const fs::path dir(scorer_dir);
  return content_line("scorer_sha256", {(dir / "scorer.safetensors").string(), (dir / "scorer.json").string()});
}

std::string model_content_line(const ModelFingerprint& model) {
  return "model_sha256: " + model.config_sha256 + " " + model.weights_sha256 + "\n";
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_json(const fs::path& path, const nlohmann::json& value) {
  AtomicOutput out(path.string());
  write_text_file(out.temp_path(), value.dump(2) + "\n");
  out.commit();
}

namespace {

// A CSV field (RFC 4180): quoted, with quotes doubled, when it holds a comma, a quote or a newline.
std::string csv_field(const nlohmann::json& v) {
  const std::string text = v.is_null() ? "" : v.is_string() ? v.get<std::string>() : v.dump();
  if (text.find_first_of(",\"\n") == std::string::npos) return text;
  std::string quoted = "\"";
  for (const char ch : text) quoted += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return quoted + "\"";
}

}  // namespace

std::string protect_refusal(const Protect& protect, const EvictionSchedule& schedule,
                            const std::vector<std::string>& ids, const std::vector<std::optional<int64_t>>& prompt_lens,
                            const std::string& source) {
  for (std::size_t i = 0; i < ids.size(); ++i) {
    try {
      protect.resolve(schedule, prompt_lens[i], source + ": " + ids[i]);
    } catch (const Error& e) {
      if (protect.prompt && !prompt_lens[i]) throw;  // no prompt length: the sweep is refused, not the cell
      return e.what();
    }
  }
  return "";
}

void write_results(const fs::path& out_dir, const std::vector<nlohmann::json>& rows,
                   const std::vector<std::string>& columns) {
  write_json(out_dir / "results.json", rows);
  AtomicOutput csv((out_dir / "results.csv").string());
  std::ostringstream f;
  for (std::size_t i = 0; i < columns.size(); ++i) f << (i ? "," : "") << columns[i];
  f << "\n";
  for (const auto& r : rows) {
    for (std::size_t i = 0; i < columns.size(); ++i) {
      f << (i ? "," : "") << csv_field(r.contains(columns[i]) ? r.at(columns[i]) : nlohmann::json(nullptr));
    }
    f << "\n";
  }
  write_text_file(csv.temp_path(), f.str());
  csv.commit();
}

}  // namespace foresight
