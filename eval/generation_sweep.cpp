#include "eval/generation_sweep.h"

#include <ATen/Parallel.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "common/error.h"
#include "common/jsonl_writer.h"
#include "common/output_guard.h"
#include "common/progress.h"
#include "common/sha256.h"
#include "common/statistics.h"
#include "generate/answer.h"
#include "eval/generation_config.h"
#include "generate/problems.h"
#include "eval/sweep_files.h"
#include "generate/generation.h"
#include "model/checkpoint.h"
#include "model/runtime_config.h"
#include "model/transformer.h"
#include "policy/scorer.h"

namespace foresight {

namespace fs = std::filesystem;

namespace {

// A row of the table: the full cache, or one policy at one schedule.
struct Cell {
  std::string policy;                       // "full" for the full cache, else the variant's name
  std::optional<EvictionOptions> eviction;  // none for the full cache
  fs::path dir;
  std::string skipped;                      // why it does not run (its protect exceeds B - W); "" when it runs
};

// What every cell decodes, and how.
struct Task {
  std::vector<Problem> problems;
  std::string problems_sha256;
  std::string model_content, scorer_content;  // config.yaml lines: the bytes behind model and scorer
  GenerationOptions options;
};

std::string id_list(const std::vector<int64_t>& ids) {
  std::string s = "[";
  for (std::size_t i = 0; i < ids.size(); ++i) s += (i ? ", " : "") + std::to_string(ids[i]);
  return s + "]";
}

// What a cell's result depends on; a cell whose config.yaml says otherwise is recomputed. The
// problems are named by their bytes too, so an edited file is not mistaken for the one scored;
// the scorer only for the policies that use it, so adding one leaves the baselines' cells done.
std::string cell_config(const GenerationEvalConfig& cfg, const Cell& c, const Task& t) {
  const GenerationOptions& o = t.options;
  std::ostringstream s;
  s << "mode: generation\npolicy: " << c.policy << "\n";
  if (c.eviction) {
    s << "budget: " << c.eviction->schedule.budget << "\ninterval: " << c.eviction->schedule.interval
      << "\nprotect: " << protect_of(*c.eviction).text() << "\n";
    if (c.eviction->scorer) s << "scorer: \"" << cfg.scorer << "\"\n" << t.scorer_content;
  }
  s << "model: " << cfg.model << "\n" << t.model_content << "dtype: " << c10::toString(cfg.runtime.dtype) << "\nproblems: " << cfg.problems
    << "\nproblems_sha256: " << t.problems_sha256 << "\nproblem_count: " << t.problems.size()
    << "\nsamples: " << o.num_samples << "\ntemperature: " << cfg.temperature << "\ntop_p: " << cfg.top_p
    << "\ntop_k: " << cfg.top_k << "\nmax_new_tokens: " << o.max_new_tokens << "\nstop_ids: " << id_list(o.stop_ids)
    << "\nseed: " << o.seed << "\n";
  return s.str();
}

// A cell's sums over its problems and samples.
struct Tally {
  std::vector<double> share_correct;  // per problem: its correct samples / samples
  int64_t samples = 0, new_tokens = 0, evictions = 0, stopped = 0, peak_entries = 0;

  // pass@1 averaged over samples: the mean over problems of each one's share of correct samples,
  // with its standard error over problems.
  MeanWithError accuracy() const { return mean_with_error(share_correct); }
};

nlohmann::json metrics_json(const Cell& c, const Tally& t, double seconds) {
  const auto per_sample = [&](int64_t total) { return static_cast<double>(total) / static_cast<double>(t.samples); };
  const MeanWithError accuracy = t.accuracy();
  return {{"policy", c.policy},
          {"B", c.eviction ? nlohmann::json(c.eviction->schedule.budget) : nlohmann::json(nullptr)},
          {"W", c.eviction ? nlohmann::json(c.eviction->schedule.interval) : nlohmann::json(nullptr)},
          {"protect", c.eviction ? nlohmann::json(protect_of(*c.eviction).text()) : nlohmann::json(nullptr)},
          {"accuracy", accuracy.mean},
          {"stderr", accuracy.standard_error},
          {"mean_length", per_sample(t.new_tokens)},
          {"mean_evictions", per_sample(t.evictions)},
          {"peak_cache_entries", t.peak_entries},
          {"stopped_fraction", per_sample(t.stopped)},
          {"problems", t.share_correct.size()},
          {"samples", t.samples},
          {"seconds", seconds}};
}

// Decodes every problem of the cell and writes its generations.jsonl; returns its result row.
nlohmann::json run_cell(const Transformer& model, const Cell& c, const Task& t, ProgressBar& bar) {
  const auto t0 = std::chrono::steady_clock::now();
  JsonlWriter out((c.dir / "generations.jsonl").string());
  Tally tally;
  for (std::size_t i = 0; i < t.problems.size(); ++i) {
    const Problem& p = t.problems[i];
    const std::vector<Generation> samples = generate(model, p.input_ids, static_cast<int64_t>(i), t.options, c.eviction);
    int64_t correct = 0;
    for (std::size_t k = 0; k < samples.size(); ++k) {
      const Generation& g = samples[k];
      const bool ok = answer_is_correct(g.new_ids, p.answer_prefix_ids, t.options.stop_ids, p.answer_ids);
      std::vector<int64_t> ids = p.input_ids;
      ids.insert(ids.end(), g.new_ids.begin(), g.new_ids.end());
      out.write(nlohmann::json{{"id", p.id},
                               {"input_ids", ids},
                               {"prompt_len", p.input_ids.size()},
                               {"sample", k},
                               {"evictions", g.evictions},
                               {"peak_cache_entries", g.peak_entries},
                               {"stopped", g.stopped},
                               {"correct", ok}}
                    .dump());
      correct += ok;
      tally.new_tokens += static_cast<int64_t>(g.new_ids.size());
      tally.evictions += g.evictions;
      tally.stopped += g.stopped;
      tally.peak_entries = std::max(tally.peak_entries, g.peak_entries);
    }
    tally.samples += static_cast<int64_t>(samples.size());
    tally.share_correct.push_back(static_cast<double>(correct) / static_cast<double>(samples.size()));
    bar.advance();
  }
  out.commit();
  return metrics_json(c, tally, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
}

// "0.750 ± 0.125 (len 31.2, ev 3.0)"
std::string table_cell(const nlohmann::json& r) {
  if (r.contains("skipped")) return "skipped: protect > B - W";
  char text[96];
  std::snprintf(text, sizeof text, "%.3f ± %.3f (len %.1f, ev %.1f)", r.at("accuracy").get<double>(),
                r.at("stderr").get<double>(), r.at("mean_length").get<double>(),
                r.at("mean_evictions").get<double>());
  return text;
}

// Policies down, schedules across; the full cache's one run is shown under every schedule, the
// reference each column is read against. To stdout, checked: a table that did not reach its file
// (a full disk) fails the command.
void print_table(const GenerationEvalConfig& cfg, const std::vector<Cell>& cells, const std::vector<nlohmann::json>& rows) {
  std::printf("| policy |");
  for (const EvictionSchedule& s : cfg.schedules) {
    std::printf(" B %lld / W %lld |", static_cast<long long>(s.budget), static_cast<long long>(s.interval));
  }
  std::printf("\n|---|");
  for (std::size_t j = 0; j < cfg.schedules.size(); ++j) std::printf("---:|");
  std::printf("\n| full |");
  for (std::size_t j = 0; j < cfg.schedules.size(); ++j) std::printf(" %s |", table_cell(rows[0]).c_str());
  for (std::size_t i = 1; i < cells.size(); i += cfg.schedules.size()) {
    std::printf("\n| %s |", cells[i].policy.c_str());
    for (std::size_t j = 0; j < cfg.schedules.size(); ++j) std::printf(" %s |", table_cell(rows[i + j]).c_str());
  }
  std::printf("\n\naccuracy: pass@1 averaged over %lld sample(s) ± its standard error over problems; len: mean new "
              "tokens; ev: mean eviction steps. full: the full cache, one run shown under every budget. NAME+prompt "
              "and NAME+N: the policy with the prompt or the first N positions protected; skipped: the budget "
              "cannot hold them (results.csv says why).\n",
              static_cast<long long>(cfg.samples));
  if (std::fflush(stdout) != 0 || std::ferror(stdout)) throw Error("cannot write the results table to standard output");
}

// results.csv's columns, in order.
const std::vector<std::string> kColumns = {"policy", "B", "W", "accuracy", "stderr", "mean_length",
                                           "mean_evictions", "peak_cache_entries", "stopped_fraction", "problems",
                                           "samples", "seconds", "protect", "skipped"};

// Throws unless every id of the problem's answer and answer prefix is in the vocabulary: one
// outside could never be generated, so the problem would score 0 without a word.
void check_answer_ids(const ModelConfig& config, const std::string& path, const Problem& p) {
  for (const auto* ids : {&p.answer_ids, &p.answer_prefix_ids}) {
    for (const int64_t id : *ids) {
      if (id >= config.vocab_size) {
        throw Error(path + ": problem \"" + p.id + "\": " + (ids == &p.answer_ids ? "answer_ids" : "answer_prefix_ids") +
                    " has token id " + std::to_string(id) + ", outside the model's vocabulary of " +
                    std::to_string(config.vocab_size));
      }
    }
  }
}

// How every cell decodes; without stop_ids, a sample stops where the checkpoint says.
GenerationOptions generation_options(const GenerationEvalConfig& cfg, const ModelConfig& config) {
  GenerationOptions o;
  o.max_new_tokens = cfg.max_new_tokens;
  o.sampling.temperature = cfg.temperature;
  o.sampling.top_p = cfg.top_p;
  o.sampling.top_k = cfg.top_k;
  o.stop_ids = cfg.stop_ids ? *cfg.stop_ids : default_stop_ids(cfg.model, config);
  o.num_samples = cfg.samples;
  o.seed = cfg.seed;
  return o;
}

}  // namespace

void run_generation_sweep(const GenerationEvalConfig& cfg) {
  require_device(cfg.runtime.device);
  // Everything that can refuse the sweep is checked before the first cell.
  check_output_outside_inputs({"output_dir", cfg.output_dir},
                              {{"model", cfg.model}, {"problems", cfg.problems}, {"scorer", cfg.scorer}});
  Task task;
  task.problems = read_problems(cfg.problems);
  task.problems_sha256 = sha256_file_hex(cfg.problems);
  if (cfg.max_problems > 0 && static_cast<int64_t>(task.problems.size()) > cfg.max_problems) {
    task.problems.resize(static_cast<std::size_t>(cfg.max_problems));
  }
  if (cfg.threads > 0) at::set_num_threads(cfg.threads);
  const Checkpoint checkpoint = load_checkpoint(cfg.model);
  const ModelConfig& mc = checkpoint.config;
  cfg.expect.check(mc, cfg.model);
  const GenerationOptions& o = task.options = generation_options(cfg, mc);
  for (const Problem& p : task.problems) {
    try {
      check_prompt_fits(mc, p.id, p.input_ids, o.max_new_tokens);
    } catch (const Error& e) {
      throw Error(cfg.problems + ": " + e.what());
    }
    check_answer_ids(mc, cfg.problems, p);
  }
  const ModelFingerprint model_fingerprint = fingerprint(checkpoint);
  task.model_content = model_content_line(model_fingerprint);
  std::optional<LearnedScorer> scorer;
  FeatureSet features = FeatureSet::Recency;
  if (!cfg.scorer.empty()) {
    // The scorer is applied at every budget of the sweep, whatever budget it was trained for; its
    // base model must be this one.
    ScorerSpec spec = LearnedScorer::read_spec(cfg.scorer);
    spec.base_model = model_fingerprint;
    scorer.emplace(LearnedScorer::load(cfg.scorer, spec));
    features = scorer->spec().features;
    task.scorer_content = scorer_content_line(cfg.scorer);
  }
  std::vector<std::string> ids;
  std::vector<std::optional<int64_t>> prompt_lens;
  for (const Problem& p : task.problems) {
    ids.push_back("problem \"" + p.id + "\"");
    prompt_lens.push_back(static_cast<int64_t>(p.input_ids.size()));
  }
  std::vector<Cell> cells{{"full", std::nullopt, fs::path(cfg.output_dir) / "runs" / "full" / "full", ""}};
  for (const PolicyVariant& v : cfg.variants) {
    for (const EvictionSchedule& s : cfg.schedules) {
      LearnedScorer* uses = find_policy(v.policy).needs_scorer ? &*scorer : nullptr;
      cells.push_back({v.name, EvictionOptions{s, v.policy, uses, features, v.protect},
                       fs::path(cfg.output_dir) / "runs" / v.name / schedule_folder(s),
                       protect_refusal(v.protect, s, ids, prompt_lens, cfg.problems)});
    }
  }
  for (const Cell& c : cells) {
    if (!c.skipped.empty()) continue;
    try {
      check_generation_options(mc, o, c.eviction);
    } catch (const Error& e) {
      const std::string what = c.eviction ? c.policy + " at B " + std::to_string(c.eviction->schedule.budget) + ", W " +
                                                std::to_string(c.eviction->schedule.interval)
                                          : "the full cache";
      throw Error("cannot generate with " + what + ": " + e.what());
    }
  }
  if (o.sampling.temperature == 0 && o.num_samples > 1) {
    std::fprintf(stderr, "eval: warning: temperature 0 decodes greedily, so the %lld samples of each problem are "
                 "the same; set temperature > 0 to sample\n", static_cast<long long>(o.num_samples));
  }

  const Transformer model(checkpoint, cfg.runtime);
  if (scorer) scorer->to(model.options().device());
  std::vector<nlohmann::json> rows(cells.size());
  std::size_t todo = 0, skipped = 0;
  for (std::size_t i = 0; i < cells.size(); ++i) {
    const Cell& c = cells[i];
    if (!c.skipped.empty()) {
      std::fprintf(stderr, "eval: skipping %s at B %lld, W %lld: %s\n", c.policy.c_str(),
                   static_cast<long long>(c.eviction->schedule.budget),
                   static_cast<long long>(c.eviction->schedule.interval), c.skipped.c_str());
      rows[i] = {{"policy", c.policy}, {"B", c.eviction->schedule.budget}, {"W", c.eviction->schedule.interval},
                 {"protect", protect_of(*c.eviction).text()}, {"skipped", c.skipped}};
      ++skipped;
    } else if (cell_is_done(c.dir, cell_config(cfg, c, task))) {
      rows[i] = nlohmann::json::parse(read_text(cells[i].dir / "result.json"));
    } else {
      ++todo;
    }
  }
  std::fprintf(stderr, "eval: full cache + %zu policy variants x %zu budgets over %zu problems x %lld samples: %zu "
               "cells to run, %zu done before\n", cfg.variants.size(), cfg.schedules.size(), task.problems.size(),
               static_cast<long long>(o.num_samples), todo, cells.size() - todo - skipped);

  ProgressBar bar("eval", static_cast<int64_t>(todo * task.problems.size()), "problem");
  for (std::size_t i = 0; i < cells.size(); ++i) {
    if (!rows[i].is_null()) continue;
    const Cell& c = cells[i];
    begin_cell(c.dir, cell_config(cfg, c, task));
    rows[i] = run_cell(model, c, task, bar);
    write_json(c.dir / "result.json", rows[i]);
  }
  bar.finish();
  write_results(cfg.output_dir, rows, kColumns);
  print_table(cfg, cells, rows);
}

}  // namespace foresight
