#include "train/run_identity.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "common/atomic_output.h"
#include "common/config.h"
#include "common/error.h"
#include "common/text_file.h"
#include "policy/scorer.h"
#include "train/run_state.h"

namespace foresight {

namespace fs = std::filesystem;

// GRPO's rollout_batch, exact_update and keep_features choose how the same update is computed (memory
// against time), not what it is: a run that ran out of memory resumes with a smaller batch or
// without kept features, and the tests take one step of a run the other way from its checkpoint.
const std::vector<std::string> kResumeSafeKeys = {
    "max_steps", "eval_every", "save_every",    "keep_last_n",  "dist_timeout_s", "output_dir",
    "model",     "golden",     "rollout_batch", "exact_update", "keep_features"};

// A finished run's directory (final/, no checkpoint left to resume) is rerun from scratch, and the new
// run replaces final/: only keys that do not change the scorer it ends with may differ.
const std::vector<std::string> kRerunSafeKeys = {"dist_timeout_s", "output_dir",   "model",        "golden",
                                                 "rollout_batch",  "exact_update", "keep_features"};

namespace {

constexpr const char* kRunFile = "run.json";

RunIdentity from_json(const nlohmann::json& j, const std::string& where) {
  try {
    return {j.at("stage").get<std::string>(), j.at("golden_sha256").get<std::string>(),
            j.at("config").get<std::string>()};
  } catch (const nlohmann::json::exception&) {
    throw Error(where + ": expected \"stage\", \"golden_sha256\" and \"config\" strings");
  }
}

// What out_dir says about the run that wrote it, and where it says so; nothing for a new directory.
std::optional<std::pair<RunIdentity, std::string>> recorded(const fs::path& out_dir) {
  const fs::path run_file = out_dir / kRunFile;
  if (fs::exists(run_file)) {
    std::ifstream in(run_file);
    const auto j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_discarded()) throw Error(run_file.string() + ": not valid JSON");
    return std::make_pair(from_json(j, run_file.string()), run_file.string());
  }
  // A directory from before run.json: its checkpoints' provenance names the same three things.
  const auto saved = list_checkpoints(out_dir);
  const fs::path newest = saved.empty() ? out_dir / "final" : saved.back().second;
  if (!fs::exists(newest / "scorer.json")) return std::nullopt;
  const std::string where = (newest / "scorer.json").string();
  return std::make_pair(from_json(nlohmann::json::parse(LearnedScorer::read_provenance(newest.string())), where),
                        where);
}

// "key: old -> new" for each key that differs outside `safe_keys`, one per line.
std::string config_differences(const std::string& old_yaml, const std::string& new_yaml, const std::string& where,
                               const std::vector<std::string>& safe_keys) {
  const auto before = Config::parse(old_yaml, where).leaves();
  const auto after = Config::parse(new_yaml, "this run's config").leaves();
  std::vector<std::string> keys;
  for (const auto& kv : before) keys.push_back(kv.first);
  for (const auto& kv : after) {
    if (!before.count(kv.first)) keys.push_back(kv.first);
  }
  std::ostringstream out;
  for (const std::string& key : keys) {
    if (std::find(safe_keys.begin(), safe_keys.end(), key) != safe_keys.end()) continue;
    const auto b = before.find(key), a = after.find(key);
    const std::string old_value = b == before.end() ? "(not set)" : b->second;
    const std::string new_value = a == after.end() ? "(not set)" : a->second;
    if (old_value != new_value) out << "\n  " << key << ": " << old_value << " -> " << new_value;
  }
  return out.str();
}

}  // namespace

void claim_output_dir(const fs::path& out_dir, const RunIdentity& mine, bool resuming) {
  if (const auto previous = recorded(out_dir)) {
    const auto& [theirs, where] = *previous;
    if (theirs.stage != mine.stage) {
      throw Error("output_dir " + out_dir.string() + " holds a " + theirs.stage + " run (" + where + "); a " +
                  mine.stage + " run will not resume or replace it: choose another output_dir");
    }
    // What this run would take over: a checkpoint it continues, or a finished run's final/ scorer
    // that it replaces when it ends. A directory with neither holds nothing this run can lose.
    const bool finished = !resuming && fs::exists(out_dir / "final");
    const std::string held = resuming ? "a checkpoint of a run" : "the final/ scorer of a finished run";
    const std::string remedy =
        resuming ? "choose another output_dir" : "choose another output_dir, or remove " + (out_dir / "final").string();
    if ((resuming || finished) && theirs.golden_sha256 != mine.golden_sha256) {
      throw Error("output_dir " + out_dir.string() + " holds " + held + " on another golden file (sha256 " +
                  theirs.golden_sha256 + " in " + where + ", this one is " + mine.golden_sha256 + "): " + remedy);
    }
    const std::vector<std::string>& safe_keys = resuming ? kResumeSafeKeys : kRerunSafeKeys;
    const std::string diff =
        resuming || finished ? config_differences(theirs.config_yaml, mine.config_yaml, where, safe_keys) : "";
    if (!diff.empty()) {
      std::string safe;
      for (const std::string& key : safe_keys) safe += (safe.empty() ? "" : ", ") + key;
      throw Error("output_dir " + out_dir.string() + " holds " + held + " with another config (" + where + "); " +
                  (resuming ? "a resumed run" : "a run that replaces it") + " may change only " + safe +
                  ", and this one changes:" + diff + "\n" + remedy + ", or rerun with the recorded values");
    }
  }
  AtomicOutput out((out_dir / kRunFile).string());
  write_text_file(out.temp_path(), nlohmann::json{{"stage", mine.stage},
                                                  {"golden_sha256", mine.golden_sha256},
                                                  {"config", mine.config_yaml}}
                                           .dump(2) + "\n");
  out.commit();
}

}  // namespace foresight
