#pragma once
// The files both sweeps of `foresight-eval` (teacher-forced and generation) write: one folder per
// (policy, schedule) cell that a rerun recognises as done, and the tables of all cells.
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cache/schedule.h"

namespace foresight {

// Why a cell protecting `protect` at `schedule` cannot run, or "" when it can: the first of `ids`
// (with their prompt lengths, nullopt: unknown) whose protect exceeds budget - interval, named
// with `source`. Protecting the prompt of an item without a prompt length is refused (throws).
std::string protect_refusal(const Protect& protect, const EvictionSchedule& schedule,
                            const std::vector<std::string>& ids, const std::vector<std::optional<int64_t>>& prompt_lens,
                            const std::string& source);

// "B64_W8": a cell's folder under runs/<policy>/.
std::string schedule_folder(const EvictionSchedule& schedule);

// Whether `dir` holds a complete cell computed with `config_text` (its config.yaml): its
// result.json, which is written last, exists. A cell of other settings is recomputed.
bool cell_is_done(const std::filesystem::path& dir, const std::string& config_text);

// A whole file's text.
std::string read_text(const std::filesystem::path& path);

// `value` as indented JSON at `path`, which appears only when complete.
void write_json(const std::filesystem::path& path, const nlohmann::json& value);

// out_dir/results.json (the rows) and out_dir/results.csv (`columns` of each row; null or absent is
// empty; a field with a comma or quote is quoted).
void write_results(const std::filesystem::path& out_dir, const std::vector<nlohmann::json>& rows,
                   const std::vector<std::string>& columns);

}  // namespace foresight
