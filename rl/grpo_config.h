#pragma once
#include <cstdint>
#include <string>

#include "cache/rollout_reward.h"
#include "model/fingerprint.h"
#include "model/transformer.h"
#include "policy/features.h"
#include "rl/rollout.h"
#include "rl/validation.h"

namespace foresight {

class Config;

// A `foresight-train grpo` config (configs/grpo/*.yaml), validated in full on parse. Names follow
// TRL's GRPOConfig; defaults are the reference hyper-parameters of DESIGN.md §6.
struct GrpoConfig {
  std::string model, golden, init_scorer, output_dir;
  RuntimeOptions runtime;
  FeatureSet features = FeatureSet::Recency;
  int64_t max_steps = 250, per_step_traces = 32, num_generations = 8, num_iterations = 1;
  // A rank's rollouts of one trace run as batches of at most this many through the model (memory
  // grows with it); 0: all of them in one batch. The rollouts themselves do not depend on it.
  int64_t rollout_batch = 0;
  double learning_rate = 3e-4, max_grad_norm = 1.0, epsilon = 0.2, beta = 0.05;
  int64_t warmup_steps = 10, beta_steps = 100;  // beta applies to the first beta_steps steps, then 0
  std::string lr_schedule = "constant";
  RewardOptions reward;
  // reward.kind answer: free-running rollouts of these problems (not the golden traces), rewarded
  // by the share of the answer's tokens they get right (generate/answer.h). What generation sees:
  // the teacher-forced rewards replay a recorded trace, so they never see the model derail.
  struct AnswerReward {
    std::string problems;           // problems JSONL; training problems, never validation or reported ones
    int64_t max_new_tokens = 0;
    std::vector<int64_t> stop_ids;  // empty: the model's eos ids
  } answer;
  LogprobKind logprob = LogprobKind::PerDrop;
  // num_iterations 1 takes the exact update (rl/exact_update.h) unless exact_update is false; the
  // replayed one (num_iterations > 1, or exact_update false) keeps features or re-runs the model.
  bool exact_update = true;
  bool keep_features = true;
  // Budgets the rollouts run at, taken in turn over each step's traces (a trace too short for one
  // takes the largest it holds); empty: the golden file's B alone. W and protect stay the golden's.
  std::vector<int64_t> rollout_budgets;
  // A policy score beyond this magnitude counts as saturated: the step that made it is not saved.
  double max_abs_score = 1e4;
  // Measured at step 0 (the init scorer) and at every save; final/ is then the best of them.
  ValidationOptions validation;
  int64_t save_every = 25, keep_last_n = 3, dist_timeout_s = 300;
  uint64_t seed = 0;
  ModelExpectation expect;
  std::string yaml;
};

GrpoConfig parse_grpo_config(const Config& config);

}  // namespace foresight
