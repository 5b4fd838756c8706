#include "rl/grpo_config.h"

#include <string>

#include "common/config.h"
#include "common/statistics.h"
#include "model/runtime_config.h"

namespace foresight {

GrpoConfig parse_grpo_config(const Config& c) {
  c.check_known_keys({"model", "golden", "init_scorer", "output_dir", "device", "dtype", "features", "max_steps",
                      "per_step_traces", "num_generations", "rollout_batch", "rollout_budgets", "num_iterations", "learning_rate", "lr_schedule",
                      "warmup_steps", "max_grad_norm", "epsilon", "beta", "beta_steps", "reward.*", "logprob",
                      "exact_update", "keep_features", "max_abs_score", "validation.problems",
                      "validation.budgets", "validation.max_new_tokens", "validation.stop_ids", "validation.margin", "validation.false_pick_rate", "save_every", "keep_last_n", "dist_timeout_s", "seed", "expect_model.*"});
  GrpoConfig r;
  r.model = c.string("model");
  r.golden = c.string("golden");
  r.init_scorer = c.string("init_scorer");
  r.output_dir = c.string("output_dir");
  r.runtime = parse_runtime_options(c);
  r.features = parse_feature_set(c.choice("features", {"recency", "reference"}, "recency"));
  r.max_steps = c.positive_int("max_steps", r.max_steps);
  r.per_step_traces = c.positive_int("per_step_traces", r.per_step_traces);
  r.num_generations = c.positive_int("num_generations", r.num_generations);
  if (r.num_generations < 2) {
    c.fail("num_generations", "is 1, expected at least 2 (group-normalised advantages need a group)");
  }
  r.rollout_batch = c.non_negative_int("rollout_batch", r.rollout_batch);
  r.num_iterations = c.positive_int("num_iterations", r.num_iterations);
  r.learning_rate = c.positive_number("learning_rate", r.learning_rate);
  r.lr_schedule = c.choice("lr_schedule", {"constant", "cosine"}, r.lr_schedule);
  r.warmup_steps = c.non_negative_int("warmup_steps", r.warmup_steps);
  r.max_grad_norm = c.positive_number("max_grad_norm", r.max_grad_norm);
  r.epsilon = c.positive_number("epsilon", r.epsilon);
  if (r.epsilon >= 1) c.fail("epsilon", "is " + c.string("epsilon") + ", expected a clip range below 1");
  r.beta = c.non_negative_number("beta", r.beta);
  r.beta_steps = c.non_negative_int("beta_steps", r.beta_steps);
  r.reward.kind = c.choice("reward.kind", {"spike", "mean_nll", "answer"}, r.reward.kind);
  if (r.reward.kind == "answer") {
    r.answer.problems = c.string("reward.problems");
    r.answer.max_new_tokens = c.positive_int("reward.max_new_tokens");
    if (c.has("reward.stop_ids")) r.answer.stop_ids = c.non_negative_int_list("reward.stop_ids", "token ids");
  } else {
    for (const char* key : {"reward.problems", "reward.max_new_tokens", "reward.stop_ids"}) {
      if (c.has(key)) c.fail(key, "is set, but reward.kind is " + r.reward.kind + "; it belongs to reward.kind answer");
    }
  }
  r.reward.threshold = c.positive_number("reward.threshold", r.reward.threshold);
  r.reward.exclude_fraction = c.non_negative_number("reward.exclude_fraction", r.reward.exclude_fraction);
  if (r.reward.exclude_fraction >= 1) {
    c.fail("reward.exclude_fraction", "is " + c.string("reward.exclude_fraction") + ", expected a fraction below 1");
  }
  r.reward.offset = c.has("reward.offset") ? c.non_negative_int("reward.offset", 0) : -1;
  r.logprob = c.choice("logprob", {"per_drop", "plackett_luce"}, "per_drop") == "per_drop" ? LogprobKind::PerDrop
                                                                                          : LogprobKind::PlackettLuce;
  r.exact_update = c.boolean("exact_update", r.num_iterations == 1);
  if (r.exact_update && r.num_iterations > 1) {
    c.fail("exact_update", "is true with num_iterations " + std::to_string(r.num_iterations) +
                               "; the exact update holds at a step's first update only (ratio 1): set it false, or "
                               "num_iterations 1");
  }
  if (r.reward.kind == "answer" && r.exact_update) {
    c.fail("exact_update", "is true (the default at num_iterations 1), but reward.kind answer updates from the features "
                           "its free-running rollouts keep (their length is known only once they stop): set it false");
  }
  r.keep_features = c.boolean("keep_features", !r.exact_update);
  if (r.reward.kind == "answer" && !r.keep_features) {
    c.fail("keep_features", "is false, but reward.kind answer updates from kept features (a free-running rollout "
                            "cannot be replayed from a recorded trace)");
  }
  if (r.exact_update && r.keep_features) {
    c.fail("keep_features", "is true, but the exact update (exact_update, the default at num_iterations 1) keeps no "
                            "features; leave it out, or set exact_update false to update from kept features");
  }
  if (c.has("rollout_budgets")) r.rollout_budgets = c.non_negative_int_list("rollout_budgets", "budgets");
  r.max_abs_score = c.positive_number("max_abs_score", r.max_abs_score);
  double false_pick_rate = 0;  // when > 0, sets validation.margin below, once save_every is known
  if (c.has("validation.problems")) {
    r.validation.problems = c.string("validation.problems");
    r.validation.max_new_tokens = c.positive_int("validation.max_new_tokens");
    if (c.has("validation.budgets")) r.validation.budgets = c.non_negative_int_list("validation.budgets", "budgets");
    if (c.has("validation.stop_ids")) r.validation.stop_ids = c.non_negative_int_list("validation.stop_ids", "token ids");
    r.validation.margin = c.non_negative_number("validation.margin", r.validation.margin);
    // 0 turns the rate off, so that an override can put a config's rate back to a fixed margin.
    false_pick_rate = c.non_negative_number("validation.false_pick_rate", 0);
    if (false_pick_rate >= 1) {
      c.fail("validation.false_pick_rate",
             "is " + c.string("validation.false_pick_rate") + ", expected a probability between 0 and 1");
    }
    if (false_pick_rate > 0 && c.has("validation.margin")) {
      c.fail("validation.false_pick_rate", "is set beside validation.margin; set one (0 turns the rate off): the "
                                           "margin is derived from the rate");
    }
  } else {
    for (const char* key : {"validation.budgets", "validation.max_new_tokens", "validation.stop_ids", "validation.margin",
                            "validation.false_pick_rate"}) {
      if (c.has(key)) c.fail(key, "is set without validation.problems, the problems it would decode");
    }
  }
  r.save_every = c.positive_int("save_every", r.save_every);
  if (false_pick_rate > 0) {
    // Bonferroni over the run's validated saves (every save_every steps and the last): each needs a
    // gain above the (1 - rate / saves) normal quantile, so that a run whose saves are all no better
    // than the init scorer replaces it with probability at most the rate, however long it runs.
    const int64_t saves = (r.max_steps + r.save_every - 1) / r.save_every;
    r.validation.margin = normal_quantile(1 - false_pick_rate / static_cast<double>(saves));
  }
  r.keep_last_n = c.positive_int("keep_last_n", r.keep_last_n);
  r.dist_timeout_s = c.positive_int("dist_timeout_s", r.dist_timeout_s);
  r.seed = static_cast<uint64_t>(c.non_negative_int("seed", 0));
  r.expect = parse_model_expectation(c);
  r.yaml = c.yaml();
  return r;
}

}  // namespace foresight
