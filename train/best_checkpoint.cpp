#include "train/best_checkpoint.h"

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "policy/scorer.h"
#include "train/run_state.h"

namespace foresight {

namespace fs = std::filesystem;

BestCheckpoint::BestCheckpoint(const fs::path& out_dir, bool writer) : out_dir_(out_dir), writer_(writer) {}

bool BestCheckpoint::restore() {
  if (!fs::exists(dir() / "scorer.json")) return false;
  const nlohmann::json p = nlohmann::json::parse(LearnedScorer::read_provenance(dir().string()));
  const auto v = p.find("validation");
  if (!p.contains("step") || v == p.end() || !v->is_object() || !v->contains("accuracy")) {
    throw Error((dir() / "scorer.json").string() + ": its provenance has no step and validation accuracy; it was not "
                "written by a validated run");
  }
  step_ = p.at("step").get<int64_t>();
  accuracy_ = v->at("accuracy").get<double>();
  return true;
}

bool BestCheckpoint::offer(int64_t step, double accuracy, const LearnedScorer& scorer,
                           const std::string& provenance_json) {
  if (step_ >= 0 && !(accuracy > accuracy_)) return false;
  step_ = step;
  accuracy_ = accuracy;
  if (writer_) save_checkpoint(dir(), scorer, provenance_json, nullptr, step);
  return true;
}

void BestCheckpoint::write_final(const ScorerSpec& spec) const {
  if (step_ < 0) throw Error("no validated scorer to keep as " + (out_dir_ / "final").string());
  const LearnedScorer best = LearnedScorer::load(dir().string(), spec);
  save_checkpoint(out_dir_ / "final", best, LearnedScorer::read_provenance(dir().string()), nullptr, step_);
}

}  // namespace foresight
