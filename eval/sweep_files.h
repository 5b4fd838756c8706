#pragma once
// The files both sweeps of `foresight-eval` (teacher-forced and generation) write: one folder per
// (policy, schedule) cell that a rerun recognises as done, and the tables of all cells.
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cache/schedule.h"
#include "model/fingerprint.h"

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

// Creates a cell's folder for a run and writes its config.yaml (complete, or not at all), after
// removing the temporaries a killed earlier run left there (`NAME.tmp-PID` of a process gone).
void begin_cell(const std::filesystem::path& dir, const std::string& config_text);

// A config.yaml line naming the bytes behind an input path ("key: SHA256 ..." of each file), so
// that a cell is done only for the same model weights, scorer or golden file, not the same path:
// one replaced in place is recomputed.
std::string content_line(const std::string& key, const std::vector<std::string>& files);

// content_line("scorer_sha256", ...) of a scorer checkpoint: its weights and its spec.
std::string scorer_content_line(const std::string& scorer_dir);

// The model's line of the same kind, from its fingerprint: config.json's hash and the weights' digest.
std::string model_content_line(const ModelFingerprint& model);

// A whole file's text.
std::string read_text(const std::filesystem::path& path);

// `value` as indented JSON at `path`, which appears only when complete.
void write_json(const std::filesystem::path& path, const nlohmann::json& value);

// out_dir/results.json (the rows) and out_dir/results.csv (`columns` of each row; null or absent is
// empty; a field with a comma or quote is quoted).
void write_results(const std::filesystem::path& out_dir, const std::vector<nlohmann::json>& rows,
                   const std::vector<std::string>& columns);

}  // namespace foresight
