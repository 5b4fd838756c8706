#include "eval/sweep.h"

#include <ATen/ATen.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/error.h"
#include "common/output_guard.h"
#include "common/progress.h"
#include "eval/eval_config.h"
#include "eval/evaluate.h"
#include "eval/sweep_files.h"
#include "golden/golden_file.h"
#include "golden/reevict.h"
#include "model/runtime_config.h"
#include "model/transformer.h"
#include "policy/scorer.h"
#include "train/run_state.h"

namespace foresight {

namespace fs = std::filesystem;

namespace {

struct Cell {
  const PolicyPreset* preset;
  PolicyVariant variant;
  EvictionSchedule schedule;  // schedule.protect unset: variant.protect is resolved per trace
  fs::path dir;
};

// What a cell's result depends on; a cell whose config.yaml says otherwise is recomputed.
// `inputs` and `scorer_content`: the bytes behind model and golden file, and the scorer's (content
// lines), so that one replaced in place is not taken for the one scored. The scorer only for the
// policies that use it, so that adding or replacing one leaves the baselines' cells done.
std::string cell_config(const EvalConfig& cfg, const Cell& c, const std::vector<std::string>& traces,
                        const std::string& inputs, const std::string& scorer_content) {
  std::ostringstream s;
  s << "policy: " << c.preset->name << "\nbudget: " << c.schedule.budget << "\ninterval: " << c.schedule.interval
    << "\nprotect: " << c.variant.protect.text() << "\nmodel: " << cfg.model << "\ngolden: " << cfg.golden << "\n"
    << inputs;
  if (c.preset->needs_scorer) s << "scorer: \"" << cfg.scorer << "\"\n" << scorer_content;
  s << "traces: " << traces.size() << "\nreward_threshold: " << cfg.reward.threshold
    << "\nreward_exclude_fraction: " << cfg.reward.exclude_fraction << "\nseed: " << cfg.seed << "\n";
  return s.str();
}

// A metric over scored positions; null when the cell scored none (no trace is longer than B + W),
// where a number would read as a perfect policy.
nlohmann::json per_position(double value) { return std::isnan(value) ? nlohmann::json(nullptr) : nlohmann::json(value); }

nlohmann::json metrics_json(const Cell& c, const PolicyMetrics& m, double seconds) {
  const auto overlap = m.golden_overlap();
  return {{"policy", c.variant.name},
          {"budget", c.schedule.budget},
          {"interval", c.schedule.interval},
          {"protect", c.variant.protect.text()},
          {"mean_nll_increase", per_position(m.mean_nll_increase())},
          {"spike_rate", per_position(m.spike_rate())},
          {"penalty", per_position(m.penalty())},
          {"golden_overlap", overlap ? nlohmann::json(*overlap) : nlohmann::json(nullptr)},
          {"traces", m.traces()},
          {"tokens", m.tokens()},
          {"scored_positions", m.scored()},
          {"seconds", seconds}};
}

bool is_recorded(const GoldenHeader& h, const EvictionSchedule& s, const Protect& p) {
  return h.schedule.budget == s.budget && h.schedule.interval == s.interval && h.protect == p;
}

// Why the golden file has no oracle for `s` under protect `p`, or "" when it has: its own
// schedule, or any other whose interval is a multiple of the recorded one when it keeps the
// attention to replay.
std::string no_oracle_reason(const GoldenHeader& h, const EvictionSchedule& s, const Protect& p) {
  if (is_recorded(h, s, p)) return "";
  if (!h.keep_attention) {
    return "it has the oracle only for B " + std::to_string(h.schedule.budget) + ", W " +
           std::to_string(h.schedule.interval) + ", protect " + h.protect.text() +
           " (record it with keep_attention: true to replay others)";
  }
  return reevict_refusal(h.schedule.interval, s);
}

// Golden Eviction for `s` (its protect resolved for this trace) under protect `p`: the file's own
// when the schedules agree, else replayed from the stored attention (blocks merged to the new
// interval) where it can be; otherwise unknown.
std::optional<OracleTrace> oracle_for(const GoldenFileReader& golden, GoldenTrace& trace, const EvictionSchedule& s,
                                      const Protect& p) {
  const GoldenHeader& h = golden.header();
  if (is_recorded(h, s, p)) return OracleTrace{trace.drop_slots, trace.oracle_scores};
  if (!no_oracle_reason(h, s, p).empty()) return std::nullopt;
  GoldenTrace replayed;
  replayed.attention = trace.attention;
  reevict(replayed, h.schedule.interval, s);
  return OracleTrace{replayed.drop_slots, replayed.oracle_scores};
}

// A row for a cell that did not run: why (in results.csv; the table says skipped), and no metrics.
nlohmann::json skipped_row(const std::string& name, const EvictionSchedule& s, const Protect& p, const std::string& why) {
  return {{"policy", name}, {"budget", s.budget}, {"interval", s.interval}, {"protect", p.text()},
          {"mean_nll_increase", nullptr}, {"spike_rate", nullptr}, {"penalty", nullptr}, {"golden_overlap", nullptr},
          {"skipped", why}};
}

// results.csv's columns, in order.
const std::vector<std::string> kColumns = {"policy", "budget", "interval", "mean_nll_increase", "spike_rate", "penalty",
                                           "golden_overlap", "traces", "tokens", "seconds", "protect", "skipped"};

// A table cell: the number, or empty where the metric is unknown (null).
std::string table_cell(const nlohmann::json& v, const char* format) {
  if (v.is_null()) return "";
  char text[32];
  std::snprintf(text, sizeof text, format, v.get<double>());
  return text;
}

// To stdout, checked: a table that did not reach its file (a full disk) fails the command.
void print_table(const std::vector<nlohmann::json>& rows) {
  std::printf("| policy | B | W | mean NLL increase | spike rate | penalty | golden overlap |\n");
  std::printf("|---|---:|---:|---:|---:|---:|---:|\n");
  for (const auto& r : rows) {
    const std::string policy = r.at("policy").get<std::string>();
    const auto budget = static_cast<long long>(r.at("budget").get<int64_t>());
    const auto interval = static_cast<long long>(r.at("interval").get<int64_t>());
    if (r.contains("skipped")) {  // one row, as the generation table has it; the reason is in results.csv
      std::printf("| %s | %lld | %lld | skipped: protect > B - W |  |  |  |\n", policy.c_str(), budget, interval);
      continue;
    }
    std::printf("| %s | %lld | %lld | %s | %s | %s | %s |\n", policy.c_str(), budget, interval,
                table_cell(r.at("mean_nll_increase"), "%.4f").c_str(), table_cell(r.at("spike_rate"), "%.4f").c_str(),
                table_cell(r.at("penalty"), "%.4f").c_str(), table_cell(r.at("golden_overlap"), "%.3f").c_str());
  }
  if (std::fflush(stdout) != 0 || std::ferror(stdout)) throw Error("cannot write the results table to standard output");
}

}  // namespace

void run_sweep(const EvalConfig& cfg) {
  require_device(cfg.runtime.device);
  // Everything that can refuse the sweep is checked before the first cell.
  check_output_outside_inputs({"output_dir", cfg.output_dir},
                              {{"model", cfg.model}, {"golden", cfg.golden}, {"scorer", cfg.scorer}});
  GoldenFileReader golden(cfg.golden);
  const TrainingModel base = load_model_of_golden(cfg.model, cfg.expect, golden, cfg.golden);
  std::vector<std::string> traces = golden.trace_ids();
  if (cfg.max_traces > 0 && static_cast<int64_t>(traces.size()) > cfg.max_traces) traces.resize(static_cast<std::size_t>(cfg.max_traces));
  if (traces.empty()) throw Error(cfg.golden + " holds no complete traces");
  std::optional<LearnedScorer> scorer;
  FeatureSet features = FeatureSet::Recency;
  if (!cfg.scorer.empty()) {
    // The scorer is applied at every budget of the sweep, whatever budget it was trained for; its
    // base model must be this one.
    ScorerSpec spec = LearnedScorer::read_spec(cfg.scorer);
    spec.base_model = base.fingerprint;
    scorer.emplace(LearnedScorer::load(cfg.scorer, spec));
    features = scorer->spec().features;
  }
  std::vector<std::optional<int64_t>> prompt_lens;
  for (const std::string& id : traces) prompt_lens.push_back(golden.prompt_len(id));
  std::vector<Cell> cells;
  std::vector<nlohmann::json> skipped;  // cells whose budget cannot hold what they protect
  for (const PolicyVariant& v : cfg.variants) {
    const PolicyPreset& preset = find_policy(v.policy);
    for (const EvictionSchedule& s : cfg.schedules) {
      const std::string reason = no_oracle_reason(golden.header(), s, v.protect);
      if (preset.needs_oracle && !reason.empty()) {
        std::fprintf(stderr, "eval: skipping %s at B %lld, W %lld: %s: %s\n", v.name.c_str(),
                     static_cast<long long>(s.budget), static_cast<long long>(s.interval), cfg.golden.c_str(),
                     reason.c_str());
        continue;
      }
      const std::string too_much = protect_refusal(v.protect, s, traces, prompt_lens, cfg.golden);
      if (!too_much.empty()) {
        std::fprintf(stderr, "eval: skipping %s at B %lld, W %lld: %s\n", v.name.c_str(),
                     static_cast<long long>(s.budget), static_cast<long long>(s.interval), too_much.c_str());
        skipped.push_back(skipped_row(v.name, s, v.protect, too_much));
        continue;
      }
      cells.push_back({&preset, v, s, fs::path(cfg.output_dir) / "runs" / v.name / schedule_folder(s)});
    }
  }

  const std::string inputs = model_content_line(base.fingerprint) + content_line("golden_sha256", {cfg.golden});
  const std::string scorer_content = scorer ? scorer_content_line(cfg.scorer) : "";
  const Transformer model(base.checkpoint, cfg.runtime);
  if (scorer) scorer->to(model.options().device());
  std::vector<nlohmann::json> rows;
  std::vector<const Cell*> todo;
  for (const Cell& c : cells) {
    if (cell_is_done(c.dir, cell_config(cfg, c, traces, inputs, scorer_content))) {
      rows.push_back(nlohmann::json::parse(read_text(c.dir / "result.json")));
    } else {
      todo.push_back(&c);
    }
  }
  std::fprintf(stderr, "eval: %zu policy variants x %zu budgets over %zu traces: %zu cells to run, %zu done before\n",
               cfg.variants.size(), cfg.schedules.size(), traces.size(), todo.size(), cells.size() - todo.size());

  ProgressBar bar("eval", static_cast<int64_t>(todo.size() * traces.size()), "trace");
  for (const Cell* c : todo) {
    begin_cell(c->dir, cell_config(cfg, *c, traces, inputs, scorer_content));
    const auto t0 = std::chrono::steady_clock::now();
    PolicyMetrics metrics;
    for (std::size_t i = 0; i < traces.size(); ++i) {
      GoldenTrace g = golden.read(traces[i]);
      const std::vector<int64_t> ids = token_ids(g.tokens);
      const EvictionSchedule schedule =
          c->variant.protect.resolve(c->schedule, prompt_lens[i], cfg.golden + ": trace " + traces[i]);
      std::optional<OracleTrace> oracle = oracle_for(golden, g, schedule, c->variant.protect);
      PolicyInputs inputs{scorer ? &*scorer : nullptr, oracle ? oracle->oracle_scores : at::Tensor(), cfg.seed + i};
      metrics.add(evaluate_trace(model, {ids, g.nll, g.entropy, oracle}, schedule, features, *c->preset, inputs,
                                 cfg.reward, cfg.seed + i));
      bar.advance();
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const nlohmann::json row = metrics_json(*c, metrics, secs);
    if (metrics.scored() == 0) {
      bar.note("eval: warning: " + c->variant.name + " at B " + std::to_string(c->schedule.budget) + ", W " +
               std::to_string(c->schedule.interval) + " scored no position: no trace of " + cfg.golden +
               " is long enough for this schedule; its metrics are left empty");
    }
    write_json(c->dir / "result.json", row);
    rows.push_back(row);
  }
  bar.finish();
  // Table order: the config's policies and their variants, then budgets; skipped cells last.
  std::vector<nlohmann::json> ordered;
  for (const Cell& c : cells) {
    for (const auto& r : rows) {
      if (r.at("policy") == c.variant.name && r.at("budget") == c.schedule.budget && r.at("interval") == c.schedule.interval) {
        ordered.push_back(r);
      }
    }
  }
  ordered.insert(ordered.end(), skipped.begin(), skipped.end());
  write_results(cfg.output_dir, ordered, kColumns);
  print_table(ordered);
}

}  // namespace foresight
