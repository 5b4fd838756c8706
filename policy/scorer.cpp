#include "policy/scorer.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/GradMode.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <type_traits>
#include <utility>

#include "common/atomic_output.h"
#include "common/error.h"
#include "common/text_file.h"
#include "common/safetensors.h"
#include "kernels/scorer_mlp_op.h"

#ifdef FORESIGHT_WITH_CUDA
#include "kernels/scorer_mlp.cuh"
#endif

namespace foresight {

namespace fs = std::filesystem;

namespace {

constexpr const char* kFormat = "foresightkv-scorer";
constexpr int64_t kVersion = 1;

nlohmann::json fingerprint_json(const ModelFingerprint& f) {
  nlohmann::json j = {{"architecture", f.architecture}, {"layers", f.layers},     {"heads", f.heads},
                      {"kv_heads", f.kv_heads},         {"head_dim", f.head_dim}, {"config_sha256", f.config_sha256}};
  // Left out rather than empty when unknown (a spec read from a checkpoint written before it existed).
  if (!f.weights_sha256.empty()) j["weights_sha256"] = f.weights_sha256;
  return j;
}

// DIR/scorer.json, parsed and checked to be a manifest of this format and version.
nlohmann::json read_manifest(const std::string& dir) {
  const fs::path manifest_path = fs::path(dir) / "scorer.json";
  std::ifstream in(manifest_path);
  if (!in) throw Error("scorer checkpoint " + dir + " has no scorer.json");
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json m;
  try {
    m = nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::exception& e) {
    throw Error(manifest_path.string() + ": not valid JSON (" + e.what() + ")");
  }
  if (!m.is_object() || m.value("format", "") != kFormat || m.value("version", 0) != kVersion) {
    throw Error(manifest_path.string() + ": not a " + std::string(kFormat) + " v1 manifest");
  }
  return m;
}

// One field of a manifest object as T, or an Error naming the key and what it should be.
template <typename T>
T manifest_field(const nlohmann::json& object, const std::string& key) {
  const auto it = object.find(key);
  const bool ok = it != object.end() && (std::is_same_v<T, std::string> ? it->is_string() : it->is_number_integer());
  if (!ok) {
    throw Error("key \"" + key + "\" is " + (it == object.end() ? std::string("missing") : it->dump()) + ", expected " +
                (std::is_same_v<T, std::string> ? "a string" : "an integer"));
  }
  return it->template get<T>();
}

// The manifest's "base_model" object; weights_sha256 may be absent (checkpoints written before it existed).
ModelFingerprint base_model_of(const nlohmann::json& m) {
  const auto b = m.find("base_model");
  if (b == m.end() || !b->is_object()) throw Error("key \"base_model\" is missing or not an object");
  return {manifest_field<std::string>(*b, "architecture"), manifest_field<int64_t>(*b, "layers"),
          manifest_field<int64_t>(*b, "heads"),
          manifest_field<int64_t>(*b, "kv_heads"),
          manifest_field<int64_t>(*b, "head_dim"),
          manifest_field<std::string>(*b, "config_sha256"),
          b->contains("weights_sha256") ? manifest_field<std::string>(*b, "weights_sha256") : std::string()};
}

}  // namespace

LearnedScorer::LearnedScorer(ScorerSpec spec, uint64_t seed) : spec_(std::move(spec)) {
  check_feature_set(spec_.features, spec_.group);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const int64_t kv = spec_.base_model.kv_heads, in = spec_.input_dim(), hidden = spec_.hidden;
  auto uniform = [&](std::vector<int64_t> shape, int64_t fan_in) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
    return at::empty(shape, at::kFloat).uniform_(-bound, bound, gen).requires_grad_(true);
  };
  for (int64_t l = 0; l < spec_.base_model.layers; ++l) {
    layers_.push_back({uniform({kv, in, hidden}, in), uniform({kv, hidden}, in), uniform({kv, hidden, 1}, hidden),
                       uniform({kv, 1}, hidden)});
  }
}

at::Tensor LearnedScorer::forward(int64_t layer, const at::Tensor& features) {
  const Layer& p = layers_.at(static_cast<std::size_t>(layer));
  const at::Tensor h = at::gelu(at::bmm(features, p.fc1_weight) + p.fc1_bias.unsqueeze(1));  // exact erf
  return (at::bmm(h, p.fc2_weight) + p.fc2_bias.unsqueeze(1)).squeeze(-1);
}

at::Tensor LearnedScorer::score(const StepView& view) {
  c10::NoGradGuard no_grad;
#ifdef FORESIGHT_WITH_CUDA
  // On the GPU the fused kernel computes forward's math in one pass over the features' K, V and
  // statistics, without forward's intermediate tensors.
  if (view.features.is_cuda() && spec_.hidden <= kScorerMlpMaxHidden) {
    const Layer& p = layers_.at(static_cast<std::size_t>(view.layer));
    const int64_t d = spec_.base_model.head_dim;
    const at::Tensor& f = view.features;
    return scorer_mlp(f.slice(-1, 0, d), f.slice(-1, d, 2 * d), f.slice(-1, 2 * d).unflatten(-1, {8, spec_.group}),
                      {p.fc1_weight, p.fc1_bias, p.fc2_weight, p.fc2_bias});
  }
#endif
  return forward(view.layer, view.features);
}

std::vector<std::pair<std::string, at::Tensor>> LearnedScorer::named_parameters() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (std::size_t l = 0; l < layers_.size(); ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    out.emplace_back(p + "fc1.weight", layers_[l].fc1_weight);
    out.emplace_back(p + "fc1.bias", layers_[l].fc1_bias);
    out.emplace_back(p + "fc2.weight", layers_[l].fc2_weight);
    out.emplace_back(p + "fc2.bias", layers_[l].fc2_bias);
  }
  return out;
}

std::vector<at::Tensor> LearnedScorer::parameters() const {
  std::vector<at::Tensor> out;
  for (const auto& [_, t] : named_parameters()) out.push_back(t);
  return out;
}

void LearnedScorer::to(const at::Device& device) {
  for (Layer& l : layers_) {
    for (at::Tensor* t : {&l.fc1_weight, &l.fc1_bias, &l.fc2_weight, &l.fc2_bias}) {
      *t = t->detach().to(device).requires_grad_(true);
    }
  }
}

void LearnedScorer::save(const std::string& dir, const std::string& provenance_json) const {
  const ModelFingerprint& m = spec_.base_model;
  const nlohmann::json manifest = {
      {"format", kFormat},
      {"version", kVersion},
      {"features", feature_set_name(spec_.features)},
      {"feature_order", feature_names(m.head_dim, spec_.group)},
      {"budget", spec_.schedule.budget},
      {"interval", spec_.schedule.interval},
      {"protect", spec_.protect.text()},
      {"layers", m.layers},
      {"kv_heads", m.kv_heads},
      {"group_size", spec_.group},
      {"head_dim", m.head_dim},
      {"hidden", spec_.hidden},
      {"activation", "gelu_erf"},
      {"base_model", fingerprint_json(m)},
      {"provenance", nlohmann::json::parse(provenance_json)}};
  AtomicOutput out(dir);
  fs::create_directories(out.temp_path());
  write_safetensors((fs::path(out.temp_path()) / "scorer.safetensors").string(), named_parameters(),
                    {{"format", "pt"}});
  write_text_file((fs::path(out.temp_path()) / "scorer.json").string(), manifest.dump(2) + "\n");
  out.commit();
}

LearnedScorer LearnedScorer::load(const std::string& dir, const ScorerSpec& expected) {
  const nlohmann::json m = read_manifest(dir);
  const ModelFingerprint& want = expected.base_model;
  const std::string manifest_path = (fs::path(dir) / "scorer.json").string();
  ModelFingerprint recorded;
  try {
    recorded = base_model_of(m);
  } catch (const Error& e) {
    throw Error(manifest_path + ": " + e.what());
  }
  if (!same_model(recorded, want, manifest_path)) {
    throw Error("scorer " + dir + " was trained for another model (" + recorded.describe() + "); this run uses " +
                want.describe());
  }
  if (m.at("features") != feature_set_name(expected.features)) {
    throw Error("scorer " + dir + " uses features \"" + m.at("features").get<std::string>() + "\"; this run asks for \"" +
                feature_set_name(expected.features) + "\"");
  }
  const int64_t budget = m.at("budget").get<int64_t>(), interval = m.at("interval").get<int64_t>();
  if (budget != expected.schedule.budget || interval != expected.schedule.interval) {
    throw Error("scorer " + dir + " was trained for budget/interval " + std::to_string(budget) + "/" +
                std::to_string(interval) + "; this run has " + std::to_string(expected.schedule.budget) + "/" +
                std::to_string(expected.schedule.interval));
  }
  ScorerSpec spec = expected;
  spec.hidden = m.at("hidden").get<int64_t>();
  LearnedScorer scorer(spec, 0);
  scorer.source_ = dir;
  const SafetensorsFile weights((fs::path(dir) / "scorer.safetensors").string());
  for (auto& [name, param] : scorer.named_parameters()) {
    if (!weights.contains(name)) throw Error("scorer " + dir + " lacks tensor " + name);
    const at::Tensor t = weights.tensor(name);
    if (t.sizes() != param.sizes()) {
      throw Error("scorer " + dir + ": tensor " + name + " has shape " + c10::str(t.sizes()) + ", expected " +
                  c10::str(param.sizes()));
    }
    // Caught here, by name, rather than as NaN scores (and drops chosen by NaN order) at every step.
    check_finite_tensor(t, weights.path(), name);
    c10::NoGradGuard no_grad;
    param.copy_(t);
  }
  return scorer;
}

ScorerSpec LearnedScorer::read_spec(const std::string& dir) {
  const nlohmann::json m = read_manifest(dir);
  try {
    ScorerSpec spec;
    spec.base_model = base_model_of(m);
    spec.group = manifest_field<int64_t>(m, "group_size");
    spec.features = parse_feature_set(manifest_field<std::string>(m, "features"));
    spec.schedule = {manifest_field<int64_t>(m, "budget"), manifest_field<int64_t>(m, "interval")};
    spec.hidden = manifest_field<int64_t>(m, "hidden");
    // Scorers saved before protect existed were trained protecting nothing.
    spec.protect = m.contains("protect") ? Protect::parse(manifest_field<std::string>(m, "protect")) : Protect{};
    spec.schedule.validate();
    // The manifest repeats the layout; copies that disagree mean it was not written by save().
    const ModelFingerprint& f = spec.base_model;
    if (f.kv_heads <= 0 || spec.group <= 0 || f.heads != spec.group * f.kv_heads) {
      throw Error("key \"group_size\" is " + std::to_string(spec.group) + ", expected base_model heads / kv_heads (" +
                  std::to_string(f.heads) + " / " + std::to_string(f.kv_heads) + ")");
    }
    for (const auto& [key, want] : {std::pair<const char*, int64_t>{"layers", f.layers}, {"kv_heads", f.kv_heads},
                                    {"head_dim", f.head_dim}}) {
      const int64_t got = manifest_field<int64_t>(m, key);
      if (got != want) {
        throw Error("key \"" + std::string(key) + "\" is " + std::to_string(got) + ", expected " +
                    std::to_string(want) + " as in base_model");
      }
    }
    if (m.value("feature_order", nlohmann::json()) != nlohmann::json(feature_names(f.head_dim, spec.group))) {
      throw Error("key \"feature_order\" is not the " + std::to_string(spec.input_dim()) +
                  " columns k0.., v0.., max_h0.. .. cum_decay_h" + std::to_string(spec.group - 1) + " of head_dim " +
                  std::to_string(f.head_dim) + " and group_size " + std::to_string(spec.group));
    }
    return spec;
  } catch (const Error& e) {
    throw Error((fs::path(dir) / "scorer.json").string() + ": " + e.what());
  }
}

std::string LearnedScorer::read_provenance(const std::string& dir) {
  const nlohmann::json m = read_manifest(dir);
  if (!m.contains("provenance")) {
    throw Error((fs::path(dir) / "scorer.json").string() + ": key \"provenance\" is missing");
  }
  return m.at("provenance").dump();
}

at::Tensor CheckedScorerPolicy::score(const StepView& view) {
  at::Tensor scores = scorer_.score(view);
  bad_.push_back((~at::isfinite(scores)).sum());
  layer_step_.emplace_back(view.layer, view.step);
  return scores;
}

void CheckedScorerPolicy::finish() {
  if (bad_.empty()) return;
  const at::Tensor bad = at::stack(bad_).to(at::kCPU);
  bad_.clear();
  const int64_t total = bad.sum().item<int64_t>();
  if (total == 0) return;
  const int64_t first = (bad > 0).nonzero()[0][0].item<int64_t>();
  const auto [layer, step] = layer_step_[static_cast<std::size_t>(first)];
  throw Error("the scorer" + (scorer_.source().empty() ? std::string() : " " + scorer_.source()) + " gave " +
              std::to_string(total) + " non-finite scores (NaN or inf), the first at layer " + std::to_string(layer) +
              ", eviction step " + std::to_string(step) +
              "; its weights are too large for float32 or the features are not finite: refusing its result");
}

}  // namespace foresight
