#pragma once
// The files both sweeps of `foresight-eval` (teacher-forced and generation) write: one folder per
// (policy, schedule) cell that a rerun recognises as done, and the tables of all cells.
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cache/schedule.h"

namespace foresight {

// "B64_W8": a cell's folder under runs/<policy>/.
std::string schedule_folder(const EvictionSchedule& schedule);

// Whether `dir` holds a complete cell computed with `config_text` (its config.yaml): its
// result.json, which is written last, exists. A cell of other settings is recomputed.
bool cell_is_done(const std::filesystem::path& dir, const std::string& config_text);

// A whole file's text.
std::string read_text(const std::filesystem::path& path);

// `value` as indented JSON at `path`, which appears only when complete.
void write_json(const std::filesystem::path& path, const nlohmann::json& value);

// out_dir/results.json (the rows) and out_dir/results.csv (`columns` of each row; null is empty).
void write_results(const std::filesystem::path& out_dir, const std::vector<nlohmann::json>& rows,
                   const std::vector<std::string>& columns);

}  // namespace foresight
