#include "eval/sweep_files.h"

#include <cstdio>
#include <fstream>
#include <sstream>

#include "common/atomic_output.h"
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

void write_results(const fs::path& out_dir, const std::vector<nlohmann::json>& rows,
                   const std::vector<std::string>& columns) {
  write_json(out_dir / "results.json", rows);
  AtomicOutput csv((out_dir / "results.csv").string());
  std::ostringstream f;
  for (std::size_t i = 0; i < columns.size(); ++i) f << (i ? "," : "") << columns[i];
  f << "\n";
  for (const auto& r : rows) {
    for (std::size_t i = 0; i < columns.size(); ++i) {
      const auto& v = r.at(columns[i]);
      f << (i ? "," : "") << (v.is_null() ? "" : v.is_string() ? v.get<std::string>() : v.dump());
    }
    f << "\n";
  }
  write_text_file(csv.temp_path(), f.str());
  csv.commit();
}

}  // namespace foresight
