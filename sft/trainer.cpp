#include "sft/trainer.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/GradMode.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "cache/budgeted_runner.h"
#include "common/atomic_output.h"
#include "common/error.h"
#include "common/progress.h"
#include "golden/golden_file.h"
#include "model/checkpoint.h"
#include "model/transformer.h"
#include "policy/scorer.h"
#include "sft/ranking_loss.h"
#include "sft/sft_config.h"
#include "train/optimizer.h"

namespace foresight {

namespace fs = std::filesystem;

namespace {

// Teacher forcing: the oracle's drops drive the cache while the scorer is scored against the
// oracle's ranking. When training, each step's share of the loss is backpropagated at once, so
// memory stays one step deep however long the trace.
class DistillationDecider : public DropDecider {
 public:
  DistillationDecider(LearnedScorer& scorer, const GoldenTrace& golden, double margin, double weight, bool train)
      : scorer_(scorer), golden_(golden), margin_(margin), weight_(weight), train_(train) {
    // Rows (step, KV head) with at least one ordered pair, per layer: the layer loss averages them.
    const at::Tensor& o = golden.oracle_scores;
    rows_ = (std::get<0>(o.max(-1)) > std::get<0>(o.min(-1))).sum({1, 2}).clamp_min(1).to(at::kDouble);
  }

  at::Tensor decide(const StepView& view) override {
    const at::Device device = view.features.device();
    const at::Tensor drops = golden_.drop_slots[view.layer][view.step].to(device, at::kLong);
    const at::Tensor oracle = golden_.oracle_scores[view.layer][view.step].to(device);
    c10::AutoGradMode grad(train_);
    const at::Tensor scores = scorer_.forward(view.layer, view.features);
    const RankingLoss l = pairwise_hinge(scores, oracle, margin_);
    const at::Tensor part = (l.row_loss * l.has_pairs).sum() * (weight_ / rows_[view.layer].item<double>());
    if (train_) part.backward();
    loss += part.item<double>();
    overlap_sum += golden_overlap(scores, drops).sum().item<double>();
    overlap_rows += scores.size(0);
    return drops;
  }

  double loss = 0, overlap_sum = 0;
  int64_t overlap_rows = 0;

 private:
  LearnedScorer& scorer_;
  const GoldenTrace& golden_;
  at::Tensor rows_;
  double margin_, weight_;
  bool train_;
};

struct BatchResult {
  double loss = 0, overlap = 0;
  int64_t tokens = 0;
};

// Mean sample loss (sum over layers) and mean golden overlap over `ids`.
BatchResult run_batch(const Transformer& model, LearnedScorer& scorer, const GoldenFileReader& golden,
                      const std::vector<std::string>& ids, const SftConfig& cfg, bool train) {
  double loss = 0, overlap_sum = 0;
  int64_t rows = 0, tokens = 0;
  for (const std::string& id : ids) {
    const GoldenTrace g = golden.read(id);
    DistillationDecider decider(scorer, g, cfg.margin, 1.0 / static_cast<double>(ids.size()), train);
    const at::Tensor t = g.tokens.to(at::kLong);
    run_budgeted(model, std::vector<int64_t>(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel()),
                 golden.header().schedule, cfg.features, decider);
    loss += decider.loss;
    overlap_sum += decider.overlap_sum;
    rows += decider.overlap_rows;
    tokens += t.numel();
  }
  return {loss, rows ? overlap_sum / static_cast<double>(rows) : 0.0, tokens};
}

// The traces of training step `step`: position step * batch + i of an endless stream of seeded
// per-epoch permutations, so any step's batch is known without replaying earlier ones.
std::vector<std::string> batch_for_step(const std::vector<std::string>& train, int64_t step, int64_t batch, uint64_t seed) {
  const auto n = static_cast<int64_t>(train.size());
  std::vector<std::string> out;
  int64_t cached_epoch = -1;
  at::Tensor order;
  for (int64_t i = 0; i < batch; ++i) {
    const int64_t global = step * batch + i, epoch = global / n;
    if (epoch != cached_epoch) {
      auto gen = at::make_generator<at::CPUGeneratorImpl>(seed * 1000003 + static_cast<uint64_t>(epoch) + 1);
      order = at::randperm(n, gen, at::kLong);
      cached_epoch = epoch;
    }
    out.push_back(train[static_cast<std::size_t>(order[global % n].item<int64_t>())]);
  }
  return out;
}

std::vector<std::pair<int64_t, fs::path>> checkpoints(const fs::path& dir) {
  std::vector<std::pair<int64_t, fs::path>> out;
  if (!fs::is_directory(dir)) return out;
  const std::regex name("step_([0-9]+)");
  for (const auto& e : fs::directory_iterator(dir)) {
    std::smatch m;
    const std::string file = e.path().filename().string();
    if (std::regex_match(file, m, name) && fs::exists(e.path() / "trainer_state.json")) {
      out.emplace_back(std::stoll(m[1]), e.path());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Keeps the metrics of steps <= `step` (the ones the resumed run will not repeat).
void truncate_metrics(const fs::path& path, int64_t step) {
  if (!fs::exists(path)) return;
  std::ifstream in(path);
  AtomicOutput out(path.string());
  std::ofstream kept(out.temp_path());
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.value("step", INT64_MAX) <= step) kept << line << "\n";
  }
  kept.close();
  out.commit();
}

std::string provenance(const SftConfig& cfg, int64_t step) {
  return nlohmann::json{{"stage", "sft"}, {"step", step}, {"golden", cfg.golden}, {"config", cfg.yaml}}.dump();
}

}  // namespace

void run_sft(const SftConfig& cfg) {
  // Everything that can refuse the run is checked before the first step.
  const GoldenFileReader golden(cfg.golden);
  const Checkpoint ckpt = load_checkpoint(cfg.model);
  cfg.expect.check(ckpt.config, cfg.model);
  const ModelFingerprint model_fp = fingerprint(ckpt.config, ckpt.config_json);
  if (!(golden.header().model == model_fp)) {
    throw Error(cfg.golden + " was recorded with another model (" + golden.header().model.describe() +
                "); this run uses " + cfg.model + " (" + model_fp.describe() + ")");
  }
  check_feature_set(cfg.features, ckpt.config.group_size());
  std::vector<std::string> ids = golden.trace_ids();
  {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(cfg.seed);
    const at::Tensor order = at::randperm(static_cast<int64_t>(ids.size()), gen, at::kLong);
    std::vector<std::string> shuffled;
    for (int64_t i = 0; i < order.numel(); ++i) shuffled.push_back(ids[static_cast<std::size_t>(order[i].item<int64_t>())]);
    ids = shuffled;
  }
  const auto heldout_n = static_cast<std::size_t>(cfg.heldout_fraction * static_cast<double>(ids.size()));
  const std::vector<std::string> heldout(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(heldout_n));
  const std::vector<std::string> train(ids.begin() + static_cast<std::ptrdiff_t>(heldout_n), ids.end());
  if (train.empty()) {
    throw Error(cfg.golden + " has " + std::to_string(ids.size()) + " traces: none left to train on after holding out " +
                std::to_string(heldout_n));
  }

  const fs::path out_dir(cfg.output_dir);
  fs::create_directories(out_dir);
  const Transformer model(ckpt, cfg.runtime);
  const ScorerSpec spec{model_fp, ckpt.config.group_size(), cfg.features, golden.header().schedule};
  const auto saved = checkpoints(out_dir);
  const int64_t start = saved.empty() ? 0 : saved.back().first;
  LearnedScorer scorer = saved.empty() ? LearnedScorer(spec, cfg.seed) : LearnedScorer::load(saved.back().second.string(), spec);
  scorer.to(model.options().device());
  Adam adam(scorer.parameters());
  if (!saved.empty()) {
    adam.load((saved.back().second / "optimizer.safetensors").string());
    truncate_metrics(out_dir / "metrics.jsonl", start);
    std::fprintf(stderr, "sft: resuming from %s (step %lld of %lld)\n", saved.back().second.c_str(),
                 static_cast<long long>(start), static_cast<long long>(cfg.max_steps));
  }
  std::fprintf(stderr, "sft: %zu training traces, %zu held out; B %lld, W %lld, features %s\n", train.size(),
               heldout.size(), static_cast<long long>(spec.schedule.budget), static_cast<long long>(spec.schedule.interval),
               feature_set_name(cfg.features));

  std::ofstream metrics(out_dir / "metrics.jsonl", std::ios::app);
  auto log = [&](const nlohmann::json& j) { metrics << j.dump() << "\n" << std::flush; };
  auto save = [&](const fs::path& dir, int64_t step, bool with_state) {
    AtomicOutput out(dir.string());
    scorer.save(out.temp_path(), provenance(cfg, step));
    if (with_state) {
      adam.save((fs::path(out.temp_path()) / "optimizer.safetensors").string());
      std::ofstream(fs::path(out.temp_path()) / "trainer_state.json") << nlohmann::json{{"step", step}}.dump() << "\n";
    }
    out.commit();
  };
  auto evaluate = [&](int64_t step, ProgressBar& bar) {
    if (heldout.empty()) return;
    const BatchResult r = run_batch(model, scorer, golden, heldout, cfg, /*train=*/false);
    log({{"split", "heldout"}, {"step", step}, {"loss", r.loss}, {"golden_overlap", r.overlap}});
    char line[160];
    std::snprintf(line, sizeof line, "sft: step %lld held-out loss %.5f golden overlap %.3f (random %.3f)",
                  static_cast<long long>(step), r.loss, r.overlap,
                  static_cast<double>(spec.schedule.interval) / static_cast<double>(spec.schedule.budget));
    bar.note(line);
  };

  ProgressBar bar("sft", cfg.max_steps - start, "step");
  int64_t last_good = saved.empty() ? -1 : start;
  for (int64_t step = start; step < cfg.max_steps; ++step) {
    const auto t0 = std::chrono::steady_clock::now();
    const BatchResult r = run_batch(model, scorer, golden, batch_for_step(train, step, cfg.batch_size, cfg.seed), cfg, true);
    const double grad_norm = clip_grad_norm(scorer.parameters(), cfg.max_grad_norm);
    if (!std::isfinite(r.loss) || !std::isfinite(grad_norm)) {
      throw Error("loss " + std::to_string(r.loss) + ", gradient norm " + std::to_string(grad_norm) + " at step " +
                  std::to_string(step + 1) + ": stopped without applying it; " +
                  (last_good >= 0 ? "the last good checkpoint is " + (out_dir / ("step_" + std::to_string(last_good))).string()
                                  : std::string("no checkpoint was saved yet")));
    }
    const double lr = scheduled_lr(cfg.lr, step, cfg.warmup_steps, cfg.max_steps, cfg.lr_schedule);
    adam.step(lr);
    adam.zero_grad();
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    log({{"step", step + 1}, {"loss", r.loss}, {"golden_overlap", r.overlap}, {"lr", lr}, {"grad_norm", grad_norm},
         {"tokens_per_s", static_cast<double>(r.tokens) / secs}, {"step_seconds", secs}});
    bar.advance();
    const bool last = step + 1 == cfg.max_steps;
    if ((step + 1) % cfg.eval_every == 0 || last) evaluate(step + 1, bar);
    if ((step + 1) % cfg.save_every == 0 || last) {
      save(out_dir / ("step_" + std::to_string(step + 1)), step + 1, true);
      last_good = step + 1;
      const auto all = checkpoints(out_dir);
      for (std::size_t i = 0; i + static_cast<std::size_t>(cfg.keep_last_n) < all.size(); ++i) fs::remove_all(all[i].second);
    }
  }
  bar.finish();
  save(out_dir / "final", cfg.max_steps, false);
  std::fprintf(stderr, "sft: done; scorer in %s\n", (out_dir / "final").c_str());
}

}  // namespace foresight
