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
  at::Tensor counts = at::zeros({static_cast<int64_t>(budgets_.size())}, at::kDouble);
  for (std::size_t b = 0; b < budgets_.size(); ++b) {
    const EvictionOptions eviction{{budgets_[b], interval_, 0}, "foresight", &scorer, features_, protect_};
    int64_t right = 0;
    for (std::size_t i = static_cast<std::size_t>(rank); i < problems_.size(); i += static_cast<std::size_t>(world)) {
      const Problem& p = problems_[i];
      const Generation g = generate(model, p.input_ids, static_cast<int64_t>(i), generation_, eviction).front();
      right += answer_is_correct(g.new_ids, p.answer_prefix_ids, generation_.stop_ids, p.answer_ids);
    }
    counts[static_cast<int64_t>(b)] = static_cast<double>(right);
  }
  return counts;
}

ValidationResult Validator::result(const at::Tensor& correct) const {
  ValidationResult r;
  for (std::size_t b = 0; b < budgets_.size(); ++b) {
    r.by_budget.push_back(correct[static_cast<int64_t>(b)].item<double>() / static_cast<double>(problems_.size()));
    r.accuracy += r.by_budget.back() / static_cast<double>(budgets_.size());
  }
  return r;
}

}  // namespace foresight
