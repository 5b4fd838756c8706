#include "rl/validation.h"

#include <ATen/ATen.h>

#include "common/error.h"
#include "generate/answer.h"
#include "model/transformer.h"
#include "policy/scorer.h"

namespace foresight {

Validator::Validator(const ValidationOptions& options, const std::string& model_dir, const Transformer& model,
                     const EvictionSchedule& training, const Protect& protect, LearnedScorer& scorer)
    : problems_(read_problems(options.problems)),
      budgets_(options.budgets.empty() ? std::vector<int64_t>{training.budget} : options.budgets),
      interval_(training.interval),
      generation_{options.max_new_tokens, {0.0, 1.0, 0},
                  options.stop_ids.empty() ? default_stop_ids(model_dir, model.config()) : options.stop_ids, 1, 0,
                  false},
      protect_(protect),
      features_(scorer.spec().features) {
  for (const int64_t budget : budgets_) {
    try {
      EvictionSchedule schedule{budget, interval_, 0};
      schedule.validate();
      check_generation_options(model.config(), generation_,
                               EvictionOptions{schedule, "foresight", &scorer, features_, protect_});
    } catch (const Error& e) {
      throw Error("validation.budgets: " + std::to_string(budget) + " with the training interval " +
                  std::to_string(interval_) + ": " + e.what());
    }
  }
  for (const Problem& p : problems_) {
    check_prompt_fits(model.config(), p.id, p.input_ids, generation_.max_new_tokens);
  }
}

at::Tensor Validator::correct(const Transformer& model, LearnedScorer& scorer, int64_t rank, int64_t world) const {
  at::Tensor right = at::zeros({static_cast<int64_t>(budgets_.size()), static_cast<int64_t>(problems_.size())}, at::kDouble);
  auto cells = right.accessor<double, 2>();
  for (std::size_t b = 0; b < budgets_.size(); ++b) {
    const EvictionOptions eviction{{budgets_[b], interval_, 0}, "foresight", &scorer, features_, protect_};
    for (std::size_t i = static_cast<std::size_t>(rank); i < problems_.size(); i += static_cast<std::size_t>(world)) {
      const Problem& p = problems_[i];
      const Generation g = generate(model, p.input_ids, static_cast<int64_t>(i), generation_, eviction).front();
      cells[static_cast<int64_t>(b)][static_cast<int64_t>(i)] =
          answer_is_correct(g.new_ids, p.answer_prefix_ids, generation_.stop_ids, p.answer_ids) ? 1.0 : 0.0;
    }
  }
  return right;
}

ValidationResult Validator::result(const at::Tensor& correct) const {
  ValidationResult r;
  const auto cells = correct.accessor<double, 2>();
  const auto budgets = static_cast<double>(budgets_.size());
  const auto problems = static_cast<double>(problems_.size());
  r.by_problem.assign(problems_.size(), 0.0);
  for (std::size_t b = 0; b < budgets_.size(); ++b) {
    double right = 0;
    for (std::size_t i = 0; i < problems_.size(); ++i) {
      const double cell = cells[static_cast<int64_t>(b)][static_cast<int64_t>(i)];
      right += cell;
      r.by_problem[i] += cell / budgets;
    }
    r.by_budget.push_back(right / problems);
    r.accuracy += r.by_budget.back() / budgets;
  }
  return r;
}

MeanWithError paired_gain(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) {
    throw Error("validation: " + std::to_string(a.size()) + " problems now, " + std::to_string(b.size()) +
                " at the first validation (metrics.jsonl): validation.problems changed since the run started");
  }
  std::vector<double> differences(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) differences[i] = a[i] - b[i];
  return mean_with_error(differences);
}

}  // namespace foresight
