#pragma once
#include <cstdint>
#include <filesystem>
#include <string>

namespace foresight {

class LearnedScorer;
struct ScorerSpec;

// The best of a run's validated scorers. It lives in OUT/best, so that a resumed run knows it, and
// becomes OUT/final when the run ends: a run that goes on past its best never ends below it.
// Provenance given to offer() records "step" and "validation": {"accuracy": ...}; restore() reads
// them back.
class BestCheckpoint {
 public:
  // `writer`: this process saves (rank 0); the others only track the numbers.
  BestCheckpoint(const std::filesystem::path& out_dir, bool writer);

  // The best so far from OUT/best, when there is one (a resumed run); false when there is none.
  bool restore();
  // `scorer`, validated at `step` with `accuracy`, becomes the best when it is the first offered or
  // strictly better (so ties keep the earlier, less trained scorer). Returns whether it did.
  bool offer(int64_t step, double accuracy, const LearnedScorer& scorer, const std::string& provenance_json);
  // OUT/final: the best scorer, with its provenance.
  void write_final(const ScorerSpec& spec) const;

  int64_t step() const { return step_; }  // -1 before the first offer
  double accuracy() const { return accuracy_; }
  std::filesystem::path dir() const { return out_dir_ / "best"; }

 private:
  std::filesystem::path out_dir_;
  bool writer_;
  int64_t step_ = -1;
  double accuracy_ = 0;
};

}  // namespace foresight
