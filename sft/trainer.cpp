#include "sft/trainer.h"

#include <ATen/ATen.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "common/collective.h"
#include "common/error.h"
#include "common/progress.h"
#include "common/sha256.h"
#include "common/text_file.h"
#include "golden/golden_file.h"
#include "model/runtime_config.h"
#include "model/transformer.h"
#include "policy/policy_drops.h"
#include "policy/scorer.h"
#include "sft/distillation_decider.h"
#include "sft/sft_config.h"
#include "train/optimizer.h"
#include "train/run_identity.h"
#include "train/run_state.h"

namespace foresight {

namespace fs = std::filesystem;

namespace {

struct BatchResult {
  double loss = 0, overlap = 0;
  int64_t tokens = 0;
};

// Mean sample loss (sum over layers) and mean golden overlap over `ids`. Each rank replays the
// traces i with i % world == rank, weighted 1/|ids| as one process weights them; the ranks then
// sum the loss, the overlap counts and, when training, the gradients, so that every rank steps
// from the gradient one process would have.
BatchResult run_batch(const Transformer& model, LearnedScorer& scorer, const GoldenFileReader& golden,
                      const std::vector<std::string>& ids, const SftConfig& cfg, bool train, Collective& ranks) {
  double loss = 0, overlap_sum = 0;
  int64_t rows = 0, tokens = 0;
  for (auto i = static_cast<std::size_t>(ranks.rank()); i < ids.size(); i += static_cast<std::size_t>(ranks.world_size())) {
    const GoldenTrace g = golden.read(ids[i]);
    const EvictionSchedule schedule = golden.schedule(ids[i]);
    DistillationDecider decider(scorer, cfg.features, g, schedule.protect, cfg.margin,
                                1.0 / static_cast<double>(ids.size()), train);
    run_budgeted(model, token_ids(g.tokens), schedule, decider);
    loss += decider.loss();
    overlap_sum += decider.overlap_sum();
    rows += decider.overlap_rows;
    tokens += g.tokens.numel();
  }
  at::Tensor s = at::tensor({loss, overlap_sum, static_cast<double>(rows), static_cast<double>(tokens)}, at::kDouble);
  all_reduce_gradients(ranks, train ? scorer.parameters() : std::vector<at::Tensor>{}, s);
  const double total_rows = s[2].item<double>();
  return {s[0].item<double>(), total_rows > 0 ? s[1].item<double>() / total_rows : 0.0, s[3].item<int64_t>()};
}

// golden_sha256 pins the data the scorer learned from, wherever the golden file moves.
std::string provenance(const SftConfig& cfg, const std::string& golden_sha256, int64_t step) {
  return nlohmann::json{{"stage", "sft"},
                        {"step", step},
                        {"golden", cfg.golden},
                        {"golden_sha256", golden_sha256},
                        {"config", cfg.yaml}}
      .dump();
}

}  // namespace

void run_sft(const SftConfig& cfg) {
  require_device(cfg.runtime.device);
  // Everything that can refuse the run is checked before the first step.
  GoldenFileReader golden(cfg.golden);
  const std::string golden_sha256 = sha256_file_hex(cfg.golden);
  const TrainingModel base = load_model_of_golden(cfg.model, cfg.expect, golden, cfg.golden);
  const Checkpoint& ckpt = base.checkpoint;
  const ModelFingerprint& model_fp = base.fingerprint;
  check_feature_set(cfg.features, ckpt.config.group_size());
  const std::vector<std::string> ids = shuffled(golden.trace_ids(), cfg.seed);
  const auto heldout_n = static_cast<std::size_t>(cfg.heldout_fraction * static_cast<double>(ids.size()));
  const std::vector<std::string> heldout(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(heldout_n));
  const std::vector<std::string> train(ids.begin() + static_cast<std::ptrdiff_t>(heldout_n), ids.end());
  if (train.empty()) {
    throw Error(cfg.golden + " has " + std::to_string(ids.size()) + " traces: none left to train on after holding out " +
                std::to_string(heldout_n));
  }

  std::unique_ptr<Collective> ranks =
      collective_from_environment(std::chrono::seconds(cfg.dist_timeout_s), cfg.runtime.device);
  // Rank 0 alone writes: the output directory, metrics and checkpoints.
  const bool writer = ranks->rank() == 0;
  const fs::path out_dir(cfg.output_dir);
  std::optional<RunOutputDir> run_output;  // a run that fails before its first row leaves no run.json behind
  if (writer) run_output.emplace(out_dir);
  const Transformer model(ckpt, cfg.runtime);
  const ScorerSpec spec{model_fp, ckpt.config.group_size(), cfg.features, golden.header().schedule,
                        golden.header().protect};
  const auto saved = list_checkpoints(out_dir);
  const int64_t start = saved.empty() ? 0 : saved.back().first;
  LearnedScorer scorer = saved.empty() ? LearnedScorer(spec, cfg.seed) : LearnedScorer::load(saved.back().second.string(), spec);
  scorer.to(model.options().device());
  Adam adam(scorer.parameters());
  // After the checkpoint's own checks (model, schedule), which name the problem more precisely.
  if (writer) claim_output_dir(out_dir, {"sft", golden_sha256, cfg.yaml}, !saved.empty());
  if (!saved.empty()) adam.load((saved.back().second / "optimizer.safetensors").string());
  std::optional<LineLog> metrics;
  std::optional<ProgressBar> bar;
  if (writer) {
    if (!saved.empty()) {
      std::fprintf(stderr, "sft: resuming from %s (step %lld of %lld)\n", saved.back().second.c_str(),
                   static_cast<long long>(start), static_cast<long long>(cfg.max_steps));
    }
    std::fprintf(stderr, "sft: %zu training traces, %zu held out, on %lld rank(s); B %lld, W %lld, features %s\n",
                 train.size(), heldout.size(), static_cast<long long>(ranks->world_size()),
                 static_cast<long long>(spec.schedule.budget), static_cast<long long>(spec.schedule.interval),
                 feature_set_name(cfg.features));
    truncate_metrics(out_dir / "metrics.jsonl", start);
    metrics.emplace((out_dir / "metrics.jsonl").string());
    bar.emplace("sft", cfg.max_steps - start, "step");
  }
  auto log = [&](const nlohmann::json& j) {
    if (writer) metrics->write(j.dump());
  };
  auto evaluate = [&](int64_t step) {
    if (heldout.empty()) return;
    const BatchResult r = run_batch(model, scorer, golden, heldout, cfg, /*train=*/false, *ranks);
    log({{"split", "heldout"}, {"step", step}, {"loss", r.loss}, {"golden_overlap", r.overlap}});
    if (!writer) return;
    char line[160];
    std::snprintf(line, sizeof line, "sft: step %lld held-out loss %.5f golden overlap %.3f (random %.3f)",
                  static_cast<long long>(step), r.loss, r.overlap,
                  static_cast<double>(spec.schedule.interval) / static_cast<double>(spec.schedule.budget));
    bar->note(line);
  };

  int64_t last_good = saved.empty() ? -1 : start;
  for (int64_t step = start; step < cfg.max_steps; ++step) {
    const auto t0 = std::chrono::steady_clock::now();
    const BatchResult r =
        run_batch(model, scorer, golden, batch_for_step(train, step, cfg.batch_size, cfg.seed), cfg, true, *ranks);
    const double grad_norm = clip_grad_norm(scorer.parameters(), cfg.max_grad_norm);
    check_finite_step(r.loss, grad_norm, step + 1, out_dir, last_good);
    const double lr = scheduled_lr(cfg.lr, step, cfg.warmup_steps, cfg.max_steps, cfg.lr_schedule);
    adam.step(lr);
    adam.zero_grad();
    check_finite_parameters(scorer.parameters(), step + 1, out_dir, last_good);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    log({{"step", step + 1}, {"loss", r.loss}, {"golden_overlap", r.overlap}, {"lr", lr}, {"grad_norm", grad_norm},
         {"tokens_per_s", static_cast<double>(r.tokens) / secs}, {"step_seconds", secs}});
    if (writer) bar->advance();
    const bool last = step + 1 == cfg.max_steps;
    if ((step + 1) % cfg.eval_every == 0 || last) evaluate(step + 1);
    if ((step + 1) % cfg.save_every == 0 || last) {
      if (writer) {
        save_checkpoint(out_dir / ("step_" + std::to_string(step + 1)), scorer,
                        provenance(cfg, golden_sha256, step + 1), &adam, step + 1);
        prune_checkpoints(out_dir, cfg.keep_last_n);
      }
      last_good = step + 1;
    }
  }
  if (!writer) return;
  bar->finish();
  save_checkpoint(out_dir / "final", scorer, provenance(cfg, golden_sha256, cfg.max_steps), nullptr, cfg.max_steps);
  std::fprintf(stderr, "sft: done; scorer in %s\n", (out_dir / "final").c_str());
}

}  // namespace foresight
