#pragma once
// Which run an output directory belongs to, so that a training run resumes only its own work: a
// run of another stage, of another golden file or of another config must not take over (and then
// prune) its checkpoints or replace its final/ scorer. configs/README.md lists the config keys a
// resumed run may change.
#include <filesystem>
#include <string>
#include <vector>

namespace foresight {

struct RunIdentity {
  std::string stage;          // "sft" | "grpo"
  std::string golden_sha256;  // the golden file's content: its path may change, its bytes may not
  std::string config_yaml;    // the resolved config (file + overrides)
};

// Config keys a resumed run may change: run length and cadence, and paths whose content is pinned
// otherwise (the golden file by its hash, the model by the golden file's fingerprint).
extern const std::vector<std::string> kResumeSafeKeys;

// Config keys that may differ when a finished run's directory (final/ and no checkpoint) is rerun
// from scratch: none that changes the scorer which replaces final/.
extern const std::vector<std::string> kRerunSafeKeys;

// Checks `mine` against what out_dir records (out_dir/run.json, or for a directory written
// before run.json existed, the newest checkpoint's provenance) and then records `mine` there.
// Refused, naming what differs: a directory of another stage; when `resuming` (a checkpoint will
// be continued), another golden file or a config that differs outside kResumeSafeKeys; when not
// resuming but final/ exists (its checkpoints pruned or removed), another golden file or a config
// that differs outside kRerunSafeKeys.
void claim_output_dir(const std::filesystem::path& out_dir, const RunIdentity& mine, bool resuming);

}  // namespace foresight
