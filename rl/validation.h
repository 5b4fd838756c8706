#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "cache/schedule.h"
#include "common/statistics.h"
#include "generate/generation.h"
#include "generate/problems.h"
#include "policy/features.h"

namespace foresight {

class LearnedScorer;
class Transformer;

// What GRPO measures its scorer by while it trains (key `validation` of a grpo config): greedy
// generation-mode accuracy on problems that are never reported, at one or more budgets. GRPO's
// reward is teacher-forced and keeps rising while the model's own generation under the scorer
// breaks; this is what tells a run when to stop, and which checkpoint to keep.
struct ValidationOptions {
  std::string problems;           // problems JSONL (generate/problems.h); empty: no validation
  std::vector<int64_t> budgets;   // empty: the training budget
  int64_t max_new_tokens = 0;
  std::vector<int64_t> stop_ids;  // empty: the model's eos ids
  // A step replaces the init scorer only when it beats it, on the mean over problems of each
  // problem's accuracy over budgets, by more than `margin` paired standard errors. Against the
  // winner's curse: the best of many noisy checkpoints looks better than it is (0: any gain). The
  // config's validation.false_pick_rate may set it from the number of saves (grpo_config.cpp).
  double margin = 1.0;

  bool enabled() const { return !problems.empty(); }
};

struct ValidationResult {
  double accuracy = 0;             // the mean over budgets of each budget's accuracy
  std::vector<double> by_budget;   // in the order of Validator::budgets()
  std::vector<double> by_problem;  // each problem's accuracy over the budgets, in file order
};

// The paired comparison of two validations of the same problems (a.size() == b.size()): the mean
// of the per-problem differences (a - b) and its standard error.
MeanWithError paired_gain(const std::vector<double>& a, const std::vector<double>& b);

// Greedy decoding of every problem under the learned scorer (policy foresight, top-W drops) at each
// budget, with the training interval and protect; accuracy is the share of problems whose final
// answer is right (generate/answer.h), as foresight-eval's generation mode counts it.
class Validator {
 public:
  // Reads and checks the problems (each must fit the model's positions with max_new_tokens) and
  // the budgets (each a multiple of the interval, above it, holding the protect), for scorers of
  // `scorer`'s kind.
  Validator(const ValidationOptions& options, const std::string& model_dir, const Transformer& model,
            const EvictionSchedule& training, const Protect& protect, LearnedScorer& scorer);

  // Right (1) or wrong (0) per budget and problem, float64 [budgets, problems], for the problems
  // this rank decodes (those with index % world == rank; the rest 0): summed over ranks, then
  // passed to result().
  at::Tensor correct(const Transformer& model, LearnedScorer& scorer, int64_t rank, int64_t world) const;
  ValidationResult result(const at::Tensor& correct) const;
  const std::vector<int64_t>& budgets() const { return budgets_; }

 private:
  std::vector<Problem> problems_;
  std::vector<int64_t> budgets_;
  int64_t interval_ = 0;
  GenerationOptions generation_;  // greedy, one sample, max_new_tokens and the stop ids
  Protect protect_;
  FeatureSet features_;
};

}  // namespace foresight
