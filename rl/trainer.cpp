#include "rl/trainer.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <memory>
#include <optional>
#include <vector>

#include "common/error.h"
#include "common/progress.h"
#include "common/sha256.h"
#include "common/text_file.h"
#include "generate/answer.h"
#include "generate/generation.h"
#include "generate/problems.h"
#include "golden/golden_file.h"
#include "model/runtime_config.h"
#include "model/transformer.h"
#include "policy/scorer.h"
#include "common/collective.h"
#include "rl/exact_update.h"
#include "rl/grpo_config.h"
#include "rl/grpo_loss.h"
#include "rl/policy_update.h"
#include "rl/rollout.h"
#include "rl/validation.h"
#include "train/best_checkpoint.h"
#include "train/optimizer.h"
#include "train/run_identity.h"
#include "train/run_state.h"

namespace foresight {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// The sampler of one rollout depends only on these, never on the rank that draws it.
at::Generator rollout_generator(uint64_t seed, int64_t step, int64_t trace, int64_t generation) {
  uint64_t h = splitmix64(seed);
  for (const int64_t v : {step, trace, generation}) h = splitmix64(h ^ static_cast<uint64_t>(v));
  return at::make_generator<at::CPUGeneratorImpl>(h);
}

struct LocalRollout {
  int64_t trace = 0, generation = 0;
  Rollout rollout;
  std::unique_ptr<ExactGradient> exact;  // the exact update's gradients, when it is taken
};

// Refuses traces too short for a reward: the schedule needs B + 2W tokens for one eviction step
// and W - 1 scored positions after it. And rollout budgets the golden file's W and each trace's
// protect cannot run with.
void check_traces(const GoldenFileReader& golden, const GrpoConfig& cfg) {
  const EvictionSchedule& s = golden.header().schedule;
  const int64_t need = s.budget + 2 * s.interval;
  for (const std::string& id : golden.trace_ids()) {
    if (golden.length(id) < need) {
      throw Error(cfg.golden + ": trace " + id + " has " + std::to_string(golden.length(id)) +
                  " tokens; GRPO needs at least B + 2W = " + std::to_string(need) +
                  " (one eviction step and positions after it to score); leave it out of the golden run");
    }
    for (const int64_t budget : cfg.rollout_budgets) {
      EvictionSchedule with = golden.schedule(id);
      with.budget = budget;
      try {
        with.validate();
      } catch (const Error& e) {
        throw Error("rollout_budgets: " + std::to_string(budget) + " with the golden file's W " +
                    std::to_string(s.interval) + " and trace " + id + "'s protect " + std::to_string(with.protect) +
                    ": " + e.what());
      }
    }
  }
}

// The schedule one trace of a step rolls out under: its own (golden B, protect resolved), with the
// budget `budgets[pick % n]`, or, when the trace is too short for an eviction step and a scored
// chunk under it (B + 2W tokens), the largest listed budget it holds; the golden B always fits.
EvictionSchedule rollout_schedule(EvictionSchedule trace, const std::vector<int64_t>& budgets, int64_t pick,
                                  int64_t length) {
  if (budgets.empty()) return trace;
  const int64_t golden_budget = trace.budget;
  trace.budget = budgets[static_cast<std::size_t>(pick % static_cast<int64_t>(budgets.size()))];
  if (length >= trace.budget + 2 * trace.interval) return trace;
  trace.budget = golden_budget;
  for (const int64_t b : budgets) {
    if (length >= b + 2 * trace.interval) trace.budget = std::max(trace.budget, b);
  }
  return trace;
}

// golden_sha256 pins the data; the init scorer's own provenance carries the SFT run's. A scorer
// chosen by validation carries what it scored.
std::string provenance(const GrpoConfig& cfg, const std::string& golden_sha256, const std::string& init_provenance,
                       int64_t step, const nlohmann::json& validation = nullptr) {
  nlohmann::json p{{"stage", "grpo"},
                   {"step", step},
                   {"golden", cfg.golden},
                   {"golden_sha256", golden_sha256},
                   {"init_scorer", cfg.init_scorer},
                   {"init_scorer_provenance", nlohmann::json::parse(init_provenance)},
                   {"config", cfg.yaml}};
  if (!validation.is_null()) p["validation"] = validation;
  return p.dump();
}

// A validation result as metrics and provenance record it: the mean, and each budget's accuracy.
nlohmann::json validation_json(const Validator& validator, const ValidationResult& r) {
  nlohmann::json by_budget = nlohmann::json::object();
  for (std::size_t b = 0; b < r.by_budget.size(); ++b) {
    by_budget[std::to_string(validator.budgets()[b])] = r.by_budget[b];
  }
  return {{"accuracy", r.accuracy}, {"by_budget", by_budget}};
}

// The first validation a metrics file records (the init scorer's: the floor), as the trainer
// compares later ones with it; by_budget is empty when the file records none. A file written before
// the margin rule has no per-problem accuracies: such a run resumes only with validation.margin 0.
ValidationResult first_validation(const fs::path& metrics, const std::vector<int64_t>& budgets, double margin) {
  std::ifstream in(metrics);
  for (std::string line; std::getline(in, line);) {
    const auto row = nlohmann::json::parse(line, nullptr, false);
    if (row.is_discarded() || !row.contains("val_accuracy_by_budget")) continue;
    ValidationResult r;
    for (const int64_t b : budgets) r.by_budget.push_back(row.at("val_accuracy_by_budget").at(std::to_string(b)).get<double>());
    if (row.contains("val_accuracy_by_problem")) {
      r.by_problem = row.at("val_accuracy_by_problem").get<std::vector<double>>();
    } else if (margin > 0) {
      throw Error(metrics.string() + ": its first validation row (step " + std::to_string(row.value("step", -1)) +
                  ") has no val_accuracy_by_problem, which validation.margin compares with; resume it with "
                  "validation.margin=0, or start a new output_dir");
    }
    return r;
  }
  return {};
}

// One sampled rollout of `ids` under the just-updated scorer, without gradient, before the step is
// saved: its scores must pass the rollouts' checks (non-finite, saturated; rl/rollout.h), or the
// step is never saved. Drawn from its own generator, so the training rollouts are unchanged.
void probe_updated_scorer(const Transformer& model, const std::vector<int64_t>& ids, const RolloutOptions& options,
                          LearnedScorer& policy, LearnedScorer& reference, uint64_t seed, int64_t step,
                          const fs::path& out_dir, int64_t last_good) {
  try {
    sample_rollouts(model, ids, options, policy, reference, {rollout_generator(seed, step, -1, 0)});
  } catch (const Error& e) {
    throw Error("the update of step " + std::to_string(step) + " broke the scorer (is the learning rate too high?): " +
                e.what() + "; stopped without saving it; " + last_good_checkpoint(out_dir, last_good));
  }
}

// Group statistics of one step's reward table [traces, generations].
struct GroupStats {
  double reward = 0, reward_std = 0, frac_zero_std = 0;
};
GroupStats group_stats(const at::Tensor& rewards) {
  const at::Tensor std = rewards.std(/*dim=*/1, /*unbiased=*/false);
  const at::Tensor spread = std::get<0>(rewards.max(1)) - std::get<0>(rewards.min(1));
  return {rewards.mean().item<double>(), std.mean().item<double>(), (spread == 0).to(at::kDouble).mean().item<double>()};
}

}  // namespace

void run_grpo(const GrpoConfig& cfg) {
  require_device(cfg.runtime.device);
  // Everything that can refuse the run is checked before the first step.
  GoldenFileReader golden(cfg.golden);
  const TrainingModel base = load_model_of_golden(cfg.model, cfg.expect, golden, cfg.golden);
  check_feature_set(cfg.features, base.checkpoint.config.group_size());
  check_traces(golden, cfg);
  const EvictionSchedule schedule = golden.header().schedule;
  const ScorerSpec spec{base.fingerprint, base.checkpoint.config.group_size(), cfg.features, schedule,
                        golden.header().protect};
  LearnedScorer reference = LearnedScorer::load(cfg.init_scorer, spec);
  const std::string init_provenance = LearnedScorer::read_provenance(cfg.init_scorer);
  const std::string golden_sha256 = sha256_file_hex(cfg.golden);
  // reward.kind answer rolls out problems, free-running, instead of the golden traces.
  const bool free_running = cfg.reward.kind == "answer";
  std::vector<Problem> problems;
  std::map<std::string, std::size_t> problem_index;
  if (free_running) {
    problems = read_problems(cfg.answer.problems);
    for (std::size_t p = 0; p < problems.size(); ++p) problem_index[problems[p].id] = p;
  }
  std::vector<std::string> sources;  // what the rollouts start from, by id
  for (const Problem& p : problems) sources.push_back(p.id);
  const std::vector<std::string> ids = shuffled(free_running ? sources : golden.trace_ids(), cfg.seed);
  if (ids.empty()) throw Error(cfg.golden + " holds no complete traces");

  std::unique_ptr<Collective> ranks =
      collective_from_environment(std::chrono::seconds(cfg.dist_timeout_s), cfg.runtime.device);
  const bool writer = ranks->rank() == 0;
  const fs::path out_dir(cfg.output_dir);
  std::optional<RunOutputDir> run_output;  // a run that fails before its first row leaves no run.json behind
  if (writer) run_output.emplace(out_dir);
  const Transformer model(base.checkpoint, cfg.runtime);
  const at::Device device = model.options().device();
  const auto saved = list_checkpoints(out_dir);
  const int64_t start = saved.empty() ? 0 : saved.back().first;
  LearnedScorer policy = LearnedScorer::load(saved.empty() ? cfg.init_scorer : saved.back().second.string(), spec);
  policy.to(device);
  reference.to(device);
  Adam adam(policy.parameters());
  if (!saved.empty()) {
    adam.load((saved.back().second / "optimizer.safetensors").string());
  }
  const std::vector<int64_t> answer_stops =
      !free_running || !cfg.answer.stop_ids.empty() ? cfg.answer.stop_ids : default_stop_ids(cfg.model, model.config());
  for (const Problem& p : problems) {
    check_prompt_fits(model.config(), p.id, p.input_ids, cfg.answer.max_new_tokens);
    golden.header().protect.resolve(schedule, static_cast<int64_t>(p.input_ids.size()), "reward.problems: " + p.id);
  }
  std::optional<Validator> validator;
  if (cfg.validation.enabled()) {
    validator.emplace(cfg.validation, cfg.model, model, schedule, golden.header().protect, policy);
  }
  // After the checkpoint's own checks (model, schedule), which name the problem more precisely.
  if (writer) claim_output_dir(out_dir, {"grpo", golden_sha256, cfg.yaml}, !saved.empty());
  if (writer) {
    if (!saved.empty()) {
      std::fprintf(stderr, "grpo: resuming from %s (step %lld of %lld)\n", saved.back().second.c_str(),
                   static_cast<long long>(start), static_cast<long long>(cfg.max_steps));
    }
    std::fprintf(stderr, "grpo: %zu %s; %lld per step x %lld generations on %lld rank(s); B %lld, W %lld; %s\n",
                 ids.size(), free_running ? "problems, written on freely (reward: the answer)" : "golden traces",
                 static_cast<long long>(cfg.per_step_traces), static_cast<long long>(cfg.num_generations),
                 static_cast<long long>(ranks->world_size()), static_cast<long long>(schedule.budget),
                 static_cast<long long>(schedule.interval),
                 cfg.exact_update    ? "exact update during the rollouts"
                 : cfg.keep_features ? "features kept for the update"
                                     : "the update re-runs the model");
  }

  RolloutOptions rollout_options{schedule, cfg.features, cfg.logprob, cfg.keep_features};
  rollout_options.max_abs_score = cfg.max_abs_score;
  std::optional<LineLog> metrics;
  std::optional<ProgressBar> bar;
  if (writer) {
    truncate_metrics(out_dir / "metrics.jsonl", start);
    metrics.emplace((out_dir / "metrics.jsonl").string());
    bar.emplace("grpo", cfg.max_steps - start, "step");
  }
  const int64_t traces = cfg.per_step_traces, groups = cfg.num_generations;
  const double weight = 1.0 / static_cast<double>(traces * groups);
  int64_t last_good = saved.empty() ? -1 : start;

  // Validation: every rank decodes its share of the problems; the outcomes are summed. Measured for
  // the init scorer first (step 0: the floor), then at every save. A later scorer is kept in
  // OUT/best only if it is at least the init scorer at every budget (SFT+GRPO must not trade one
  // budget for another), beats it by more than validation.margin paired standard errors (the best
  // of many noisy checkpoints otherwise wins by luck; validation.false_pick_rate derives the margin
  // from the number of saves), and is better than the best on the mean.
  BestCheckpoint best(out_dir, writer);
  ValidationResult floor;
  auto validate = [&](int64_t at_step, nlohmann::json& row) {
    std::vector<at::Tensor> correct{validator->correct(model, policy, ranks->rank(), ranks->world_size())};
    ranks->all_reduce_sum(correct);
    const ValidationResult r = validator->result(correct[0]);
    const nlohmann::json v = validation_json(*validator, r);
    const bool is_floor = floor.by_budget.empty();
    if (is_floor) floor = r;
    bool above_floor = true;
    for (std::size_t b = 0; b < floor.by_budget.size(); ++b) above_floor = above_floor && r.by_budget[b] >= floor.by_budget[b];
    const MeanWithError gain = floor.by_problem.empty() ? MeanWithError{} : paired_gain(r.by_problem, floor.by_problem);
    const bool beats_floor = is_floor || floor.by_problem.empty() || gain.mean > cfg.validation.margin * gain.standard_error;
    if (above_floor && beats_floor) {
      best.offer(at_step, r.accuracy, policy, provenance(cfg, golden_sha256, init_provenance, at_step, v));
    }
    row["val_accuracy"] = r.accuracy;
    row["val_accuracy_by_budget"] = v.at("by_budget");
    row["val_accuracy_by_problem"] = r.by_problem;
    row["val_above_floor"] = above_floor;
    row["val_gain"] = gain.mean;
    row["val_gain_stderr"] = gain.standard_error;
    row["val_margin"] = cfg.validation.margin;
    row["val_beats_floor"] = beats_floor;
    row["best_step"] = best.step();
    row["best_val_accuracy"] = best.accuracy();
  };
  // Resumed, the best so far is in OUT/best, saved before any step_N that followed it, and the
  // floor is the first validation row of metrics.jsonl. A run without them (resumed from a run that
  // did not validate) starts from the scorer it resumes.
  if (validator && !saved.empty() && best.restore()) {
    floor = first_validation(out_dir / "metrics.jsonl", validator->budgets(), cfg.validation.margin);
  }
  if (validator && floor.by_budget.empty()) {
    nlohmann::json row{{"step", start}};
    validate(start, row);
    if (writer) metrics->write(row.dump());
  }
  if (validator && writer) {
    std::fprintf(stderr, "grpo: validation on %s: best %.4f at step %lld so far\n", cfg.validation.problems.c_str(),
                 best.accuracy(), static_cast<long long>(best.step()));
  }

  for (int64_t step = start; step < cfg.max_steps; ++step) {
    const auto t0 = Clock::now();
    const UpdateOptions update{cfg.epsilon, step < cfg.beta_steps ? cfg.beta : 0.0, cfg.logprob};
    // Rollouts: this rank's generations of every trace; the reward table is summed over ranks.
    const std::vector<std::string> batch = batch_for_step(ids, step, traces, cfg.seed);
    std::vector<std::vector<int64_t>> tokens(batch.size());
    std::vector<RolloutOptions> trace_options(batch.size(), rollout_options);  // protect resolved per trace
    std::vector<LocalRollout> local;
    // reward, then spike rate and NLL increase (teacher-forced) or correct and tokens written (answer)
    at::Tensor table = at::zeros({traces, groups, 3}, at::kDouble);
    int64_t rollout_tokens = 0;
    try {
      for (int64_t i = 0; i < traces; ++i) {
        // What the rollouts start from: a golden trace, teacher-forced, or a problem's prompt, written on.
        const std::string& id = batch[static_cast<std::size_t>(i)];
        const Problem* problem = free_running ? &problems[problem_index.at(id)] : nullptr;
        const GoldenTrace g = free_running ? GoldenTrace{} : golden.read(id);
        tokens[static_cast<std::size_t>(i)] = free_running ? problem->input_ids : token_ids(g.tokens);
        const auto& ids_i = tokens[static_cast<std::size_t>(i)];
        const EvictionSchedule own =
            free_running ? golden.header().protect.resolve(schedule, static_cast<int64_t>(ids_i.size()), id)
                         : golden.schedule(id);
        const int64_t longest = static_cast<int64_t>(ids_i.size()) + (free_running ? cfg.answer.max_new_tokens : 0);
        const EvictionSchedule& trace_schedule = trace_options[static_cast<std::size_t>(i)].schedule =
            rollout_schedule(own, cfg.rollout_budgets, step * traces + i, longest);
        const int64_t offset =
            cfg.reward.offset >= 0 ? cfg.reward.offset : trace_schedule.budget + trace_schedule.interval;
        std::vector<int64_t> my_generations;  // this rank's share of the trace's group
        for (int64_t gen = ranks->rank(); gen < groups; gen += ranks->world_size()) my_generations.push_back(gen);
        const std::size_t per_pass =
            cfg.rollout_batch > 0 ? static_cast<std::size_t>(cfg.rollout_batch) : my_generations.size();
        for (std::size_t first = 0; first < my_generations.size(); first += per_pass) {
          const std::size_t end = std::min(my_generations.size(), first + per_pass);
          std::vector<at::Generator> gens;
          std::vector<std::unique_ptr<ExactGradient>> exact;
          std::vector<RolloutGradient*> gradients;
          for (std::size_t k = first; k < end; ++k) {
            gens.push_back(rollout_generator(cfg.seed, step, i, my_generations[k]));
            exact.push_back(cfg.exact_update ? std::make_unique<ExactGradient>(
                                                   policy, trace_schedule.steps(static_cast<int64_t>(ids_i.size())), update, weight)
                                             : nullptr);
            gradients.push_back(exact.back().get());
          }
          const RolloutOptions& options_i = trace_options[static_cast<std::size_t>(i)];
          std::vector<Rollout> rollouts =
              free_running ? sample_free_rollouts(model, ids_i, options_i, policy, reference, std::move(gens),
                                                  cfg.answer.max_new_tokens, answer_stops)
                           : sample_rollouts(model, ids_i, options_i, policy, reference, std::move(gens),
                                             std::move(gradients));
          for (std::size_t k = first; k < end; ++k) {
            LocalRollout r{i, my_generations[k], std::move(rollouts[k - first]), std::move(exact[k - first])};
            if (free_running) {
              const std::vector<int64_t>& text = r.rollout.generated;
              r.rollout.reward.reward =
                  answer_token_fraction(text, problem->answer_prefix_ids, answer_stops, problem->answer_ids);
              const bool right = answer_is_correct(text, problem->answer_prefix_ids, answer_stops, problem->answer_ids);
              table[i][my_generations[k]] =
                  at::tensor({r.rollout.reward.reward, right ? 1.0 : 0.0, static_cast<double>(text.size())},
                             at::kDouble);
              rollout_tokens += static_cast<int64_t>(ids_i.size() + text.size());
            } else {
              r.rollout.reward = rollout_reward(g.nll, g.entropy, r.rollout.nll.cpu(), offset, cfg.reward);
              table[i][my_generations[k]] = at::tensor({r.rollout.reward.reward, r.rollout.reward.spike_rate,
                                              r.rollout.reward.mean_nll_increase}, at::kDouble);
              rollout_tokens += g.tokens.numel();
            }
            local.push_back(std::move(r));
          }
        }
        // The probe before a save replays the first trace: a prompt alone may end before any eviction.
        if (free_running && i == 0 && !local.empty()) {
          tokens.front().insert(tokens.front().end(), local.front().rollout.generated.begin(),
                                local.front().rollout.generated.end());
        }
      }
    } catch (const Error& e) {
      // The scorer drawing these rollouts is the one the last update made.
      throw Error(std::string(e.what()) + "; the scorer of step " + std::to_string(step) + " is refused: stopped; " +
                  last_good_checkpoint(out_dir, last_good));
    }
    std::vector<at::Tensor> reduced{table};
    ranks->all_reduce_sum(reduced);
    const at::Tensor rewards = table.select(2, 0);
    std::vector<at::Tensor> advantages;
    for (int64_t i = 0; i < traces; ++i) advantages.push_back(group_advantages(rewards[i]));
    const double rollout_secs = seconds_since(t0);

    // Updates: every rank backpropagates its rollouts (or, exactly, combines the gradients they
    // took with the advantages); the gradients are summed over ranks.
    const auto t1 = Clock::now();
    const double lr = scheduled_lr(cfg.learning_rate, step, cfg.warmup_steps, cfg.max_steps, cfg.lr_schedule);
    UpdateStats total;
    double grad_norm = 0;
    for (int64_t it = 0; it < cfg.num_iterations; ++it) {
      UpdateStats mine;
      for (const LocalRollout& r : local) {
        const double advantage = advantages[static_cast<std::size_t>(r.trace)][r.generation].item<double>();
        mine += r.exact           ? r.exact->apply(advantage)
                : cfg.keep_features ? backprop_kept(policy, r.rollout, advantage, update, weight)
                                    : backprop_replayed(model, tokens[static_cast<std::size_t>(r.trace)],
                                                        trace_options[static_cast<std::size_t>(r.trace)], policy,
                                                        r.rollout, advantage, update, weight);
      }
      at::Tensor s = at::tensor({mine.loss, mine.kl, mine.clip, static_cast<double>(mine.layers)}, at::kDouble);
      all_reduce_gradients(*ranks, policy.parameters(), s);
      total += UpdateStats{s[0].item<double>(), s[1].item<double>(), s[2].item<double>(), s[3].item<int64_t>(),
                           mine.scorer_seconds};
      grad_norm = clip_grad_norm(policy.parameters(), cfg.max_grad_norm);
      check_finite_step(s[0].item<double>(), grad_norm, step + 1, out_dir, last_good);
      adam.step(lr);
      adam.zero_grad();
      check_finite_parameters(policy.parameters(), step + 1, out_dir, last_good);
    }
    const double update_secs = seconds_since(t1);
    double kept_bytes = 0;  // measured from what this rank's rollouts hold, before they are released
    for (const LocalRollout& r : local) kept_bytes += static_cast<double>(kept_feature_bytes(r.rollout));

    const bool save_now = (step + 1) % cfg.save_every == 0 || step + 1 == cfg.max_steps;
    if (save_now) {
      probe_updated_scorer(model, tokens.front(), trace_options.front(), policy, reference, cfg.seed, step + 1, out_dir,
                           last_good);
    }
    const GroupStats g = group_stats(rewards);
    const double layers = static_cast<double>(std::max<int64_t>(total.layers, 1));
    nlohmann::json row{{"step", step + 1},
                       {"reward", g.reward},
                       {"reward_std", g.reward_std},
                       {"frac_reward_zero_std", g.frac_zero_std},
                       {"kl", total.kl / layers},
                       {"clip_ratio", total.clip / layers},
                       {free_running ? "answer_correct" : "spike_rate", table.select(2, 1).mean().item<double>()},
                       {free_running ? "generated_tokens" : "nll_increase", table.select(2, 2).mean().item<double>()},
                       {"loss", total.loss / static_cast<double>(cfg.num_iterations)},
                       {"grad_norm", grad_norm},
                       {"lr", lr},
                       {"beta", update.beta},
                       {"rollout_tokens_per_s", static_cast<double>(rollout_tokens) / rollout_secs},
                       {"rollout_seconds", rollout_secs},
                       {"update_seconds", update_secs},
                       {"update_scorer_seconds", total.scorer_seconds},
                       {"kept_feature_bytes_per_rollout", kept_bytes / std::max<double>(local.size(), 1)}};
    if (!cfg.rollout_budgets.empty()) {
      std::vector<int64_t> budgets;
      for (const RolloutOptions& o : trace_options) budgets.push_back(o.schedule.budget);
      row["rollout_budgets"] = budgets;
    }
    if (save_now && validator) {
      const auto tv = Clock::now();
      validate(step + 1, row);
      row["validation_seconds"] = seconds_since(tv);
    }
    row["step_seconds"] = seconds_since(t0);
    if (writer) {
      metrics->write(row.dump());
      bar->advance();
      if (save_now) {
        save_checkpoint(out_dir / ("step_" + std::to_string(step + 1)), policy,
                        provenance(cfg, golden_sha256, init_provenance, step + 1), &adam, step + 1);
        prune_checkpoints(out_dir, cfg.keep_last_n);
      }
    }
    if (save_now) last_good = step + 1;
  }
  if (writer) {
    bar->finish();
    if (validator) {
      // final/ is the best validated scorer, which may be the init scorer (step 0): a longer run
      // never ends below where validation says it was best.
      best.write_final(spec);
      std::fprintf(stderr, "grpo: done; the best validation (%.4f) was at step %lld; its scorer is in %s\n",
                   best.accuracy(), static_cast<long long>(best.step()), (out_dir / "final").c_str());
    } else {
      save_checkpoint(out_dir / "final", policy, provenance(cfg, golden_sha256, init_provenance, cfg.max_steps),
                      nullptr, cfg.max_steps);
      std::fprintf(stderr, "grpo: done; scorer in %s\n", (out_dir / "final").c_str());
    }
  }
}

}  // namespace foresight
