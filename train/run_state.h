#pragma once
// What the training stages share about a run's life: which traces a step uses, where its
// checkpoints are, and how a resumed or failed run leaves its output directory.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "model/checkpoint.h"
#include "model/fingerprint.h"

namespace foresight {

class Adam;
class GoldenFileReader;
class LearnedScorer;

// The frozen model a golden file was recorded with: loaded, checked against the config's
// expectation and refused unless its fingerprint is the golden file's. From then on `golden`
// refuses tokens outside the model's vocabulary.
struct TrainingModel {
  Checkpoint checkpoint;
  ModelFingerprint fingerprint;
};
TrainingModel load_model_of_golden(const std::string& model_dir, const ModelExpectation& expect,
                                   GoldenFileReader& golden, const std::string& golden_path);

// A trace's token tensor (any integer dtype) as the ids the model runner takes.
std::vector<int64_t> token_ids(const at::Tensor& tokens);

// `ids` in an order fixed by `seed`.
std::vector<std::string> shuffled(std::vector<std::string> ids, uint64_t seed);

// The traces of training step `step`: position step * batch + i of an endless stream of seeded
// per-epoch permutations, so any step's batch is known without replaying earlier ones.
std::vector<std::string> batch_for_step(const std::vector<std::string>& traces, int64_t step, int64_t batch,
                                        uint64_t seed);

// A training run's output directory, created if missing. If the run fails (an exception leaves
// the scope) before it wrote a metrics row or a checkpoint, the run.json and empty metrics.jsonl
// it wrote go, and the directory too when this run created it and nothing else is there: a failed
// run leaves nothing behind that looks like a run. Anything there before stays.
class RunOutputDir {
 public:
  explicit RunOutputDir(std::filesystem::path dir);
  ~RunOutputDir();
  RunOutputDir(const RunOutputDir&) = delete;
  RunOutputDir& operator=(const RunOutputDir&) = delete;

 private:
  std::filesystem::path dir_;
  bool created_ = false, had_run_file_ = false, had_metrics_ = false;
};

// dir/step_N checkpoints that are complete (hold trainer_state.json), by ascending N.
std::vector<std::pair<int64_t, std::filesystem::path>> list_checkpoints(const std::filesystem::path& dir);

// Writes dir/ atomically: the scorer, and with `adam` also optimizer.safetensors and
// trainer_state.json {"step": step}, which make it a checkpoint a run resumes from.
void save_checkpoint(const std::filesystem::path& dir, const LearnedScorer& scorer, const std::string& provenance_json,
                     const Adam* adam, int64_t step);

// Removes all but the newest `keep` step_N checkpoints.
void prune_checkpoints(const std::filesystem::path& dir, int64_t keep);

// Keeps the metrics rows of steps <= `step` (the ones a resumed run will not repeat); with step 0,
// a run that starts from scratch, none: rows of an earlier attempt that died before its first
// checkpoint would otherwise read as part of this run.
void truncate_metrics(const std::filesystem::path& path, int64_t step);

// "the last good checkpoint is OUT/step_N", or that none was saved yet (last_good < 0).
std::string last_good_checkpoint(const std::filesystem::path& out_dir, int64_t last_good);

// Throws unless loss and gradient norm are finite, naming the step and the last good checkpoint
// (`last_good` < 0: none yet), before the optimizer applies anything.
void check_finite_step(double loss, double grad_norm, int64_t step, const std::filesystem::path& out_dir,
                       int64_t last_good);

// Throws unless every parameter is finite after step `step`'s update, naming the step and the last
// good checkpoint, before the step is logged or saved (a huge learning rate overflows the weights
// while loss and gradient norm are still finite).
void check_finite_parameters(const std::vector<at::Tensor>& parameters, int64_t step,
                             const std::filesystem::path& out_dir, int64_t last_good);

}  // namespace foresight
