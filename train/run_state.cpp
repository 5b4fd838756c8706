#include "train/run_state.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <exception>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "common/atomic_output.h"
#include "common/error.h"
#include "common/text_file.h"
#include "golden/golden_file.h"
#include "policy/scorer.h"
#include "train/optimizer.h"

namespace foresight {

namespace fs = std::filesystem;

TrainingModel load_model_of_golden(const std::string& model_dir, const ModelExpectation& expect,
                                   GoldenFileReader& golden, const std::string& golden_path) {
  Checkpoint ckpt = load_checkpoint(model_dir);
  expect.check(ckpt.config, model_dir);
  const ModelFingerprint fp = fingerprint(ckpt);
  if (!same_model(golden.header().model, fp, golden_path)) {
    throw Error(golden_path + " was recorded with another model (" + golden.header().model.describe() +
                "); this run uses " + model_dir + " (" + fp.describe() + ")");
  }
  golden.expect_vocab(ckpt.config.vocab_size);
  return {std::move(ckpt), fp};
}

std::vector<int64_t> token_ids(const at::Tensor& tokens) {
  const at::Tensor t = tokens.to(at::kCPU, at::kLong).contiguous();
  return {t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel()};
}

std::vector<std::string> shuffled(std::vector<std::string> ids, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const at::Tensor order = at::randperm(static_cast<int64_t>(ids.size()), gen, at::kLong);
  std::vector<std::string> out;
  for (int64_t i = 0; i < order.numel(); ++i) out.push_back(ids[static_cast<std::size_t>(order[i].item<int64_t>())]);
  return out;
}

std::vector<std::string> batch_for_step(const std::vector<std::string>& traces, int64_t step, int64_t batch,
                                        uint64_t seed) {
  const auto n = static_cast<int64_t>(traces.size());
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
    out.push_back(traces[static_cast<std::size_t>(order[global % n].item<int64_t>())]);
  }
  return out;
}

RunOutputDir::RunOutputDir(fs::path dir) : dir_(std::move(dir)) {
  created_ = !fs::exists(dir_);
  had_run_file_ = fs::exists(dir_ / "run.json");
  had_metrics_ = fs::exists(dir_ / "metrics.jsonl");
  fs::create_directories(dir_);
}

RunOutputDir::~RunOutputDir() {
  if (std::uncaught_exceptions() == 0 || had_run_file_) return;
  std::error_code ec;
  const fs::path metrics = dir_ / "metrics.jsonl";
  if (fs::exists(metrics) && (had_metrics_ || fs::file_size(metrics, ec) > 0)) return;  // rows worth keeping
  for (const char* name : {"final", "best"}) {
    if (fs::exists(dir_ / name)) return;
  }
  if (!list_checkpoints(dir_).empty()) return;
  fs::remove(dir_ / "run.json", ec);
  fs::remove(metrics, ec);
  if (created_ && fs::is_empty(dir_, ec)) fs::remove(dir_, ec);
}

std::vector<std::pair<int64_t, fs::path>> list_checkpoints(const fs::path& dir) {
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

void save_checkpoint(const fs::path& dir, const LearnedScorer& scorer, const std::string& provenance_json,
                     const Adam* adam, int64_t step) {
  AtomicOutput out(dir.string());
  scorer.save(out.temp_path(), provenance_json);
  if (adam) {
    adam->save((fs::path(out.temp_path()) / "optimizer.safetensors").string());
    write_text_file((fs::path(out.temp_path()) / "trainer_state.json").string(),
                    nlohmann::json{{"step", step}}.dump() + "\n");
  }
  out.commit();
}

void prune_checkpoints(const fs::path& dir, int64_t keep) {
  const auto all = list_checkpoints(dir);
  for (std::size_t i = 0; i + static_cast<std::size_t>(keep) < all.size(); ++i) fs::remove_all(all[i].second);
}

void truncate_metrics(const fs::path& path, int64_t step) {
  if (!fs::exists(path)) return;
  std::ifstream in(path);
  std::string kept;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.value("step", INT64_MAX) <= step) kept += line + "\n";
  }
  AtomicOutput out(path.string());
  write_text_file(out.temp_path(), kept);
  out.commit();
}

std::string last_good_checkpoint(const fs::path& out_dir, int64_t last_good) {
  return last_good >= 0 ? "the last good checkpoint is " + (out_dir / ("step_" + std::to_string(last_good))).string()
                        : std::string("no checkpoint was saved yet");
}

void check_finite_step(double loss, double grad_norm, int64_t step, const fs::path& out_dir, int64_t last_good) {
  if (std::isfinite(loss) && std::isfinite(grad_norm)) return;
  throw Error("loss " + std::to_string(loss) + ", gradient norm " + std::to_string(grad_norm) + " at step " +
              std::to_string(step) + ": stopped without applying it; " + last_good_checkpoint(out_dir, last_good));
}

void check_finite_parameters(const std::vector<at::Tensor>& parameters, int64_t step, const fs::path& out_dir,
                             int64_t last_good) {
  for (const at::Tensor& p : parameters) {
    if (at::isfinite(p).all().item<bool>()) continue;
    throw Error("the update of step " + std::to_string(step) +
                " made the scorer's weights non-finite (is the learning rate too high?): stopped without saving it; " +
                last_good_checkpoint(out_dir, last_good));
  }
}

}  // namespace foresight
