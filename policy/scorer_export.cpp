#include "policy/scorer_export.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <utility>
#include <vector>

#include "common/atomic_output.h"
#include "common/error.h"
#include "common/memory.h"
#include "common/output_guard.h"
#include "common/safetensors.h"
#include "common/text_file.h"
#include "model/checkpoint.h"
#include "model/fingerprint.h"
#include "policy/scorer.h"

namespace foresight {

namespace fs = std::filesystem;

namespace {

constexpr const char* kFormat = "foresightkv-scorer-export";
constexpr int64_t kVersion = 1;
constexpr const char* kTestVectorsFile = "test_vectors.safetensors";
// Fixed, so that one checkpoint always exports the same test vectors.
constexpr uint64_t kTestVectorSeed = 0;
// The authors' SelectionModel hard-codes this width.
constexpr int64_t kReferenceHidden = 16;

constexpr const char* kManifestFile = "manifest.json";

const char* weights_file(ExportFormat format) {
  return format == ExportFormat::Native ? "scorer.safetensors" : "judge.safetensors";
}

// Refuses an --out whose replacement would lose data: the checkpoint itself or a folder inside it,
// always; anything that exists, unless --force and it is an earlier export: an export manifest and
// nothing but files an export writes (a user's lone scorer.safetensors is not an export), or empty.
void check_out(const ExportRequest& request) {
  check_output_outside_inputs({"--out", request.out}, {{"--checkpoint", request.checkpoint}, {"--model", request.model}});
  const fs::path out(request.out);
  if (!fs::exists(fs::symlink_status(out))) return;
  if (!request.force) {
    throw Error("--out " + request.out + " exists: refusing to replace it (--force replaces an earlier export)");
  }
  if (fs::is_symlink(out) || !fs::is_directory(out)) {
    throw Error("--out " + request.out + " is not an export directory: refusing to replace it, even with --force");
  }
  const std::vector<std::string> ours = {weights_file(ExportFormat::Native), weights_file(ExportFormat::Reference),
                                         kManifestFile, kTestVectorsFile};
  bool empty = true;
  for (const auto& entry : fs::directory_iterator(out)) {
    empty = false;
    const std::string name = entry.path().filename().string();
    if (!entry.is_regular_file() || std::find(ours.begin(), ours.end(), name) == ours.end()) {
      throw Error("--out " + request.out + " holds " + name +
                  ", which foresight-export does not write: refusing to replace it, even with --force");
    }
  }
  if (empty) return;
  const fs::path manifest = out / kManifestFile;
  std::ifstream in(manifest);
  const auto j = in ? nlohmann::json::parse(in, nullptr, false) : nlohmann::json();
  if (!j.is_object() || j.value("format", "") != kFormat) {
    throw Error("--out " + request.out + " is not an earlier export (" +
                (fs::exists(manifest) ? manifest.string() + " is not a " + std::string(kFormat) + " manifest"
                                      : "it has no " + std::string(kManifestFile)) +
                "): refusing to replace it, even with --force");
  }
}

// "layers.{i}.fc1.weight" -> "model.layers.{i}.self_attn.judge_model.fc1.weight": where the authors'
// scorer sits inside each attention module of a HF model.
std::string exported_name(ExportFormat format, const std::string& native) {
  if (format == ExportFormat::Native) return native;
  const std::size_t layer_end = native.find('.', native.find('.') + 1);  // just after "layers.{i}"
  return "model." + native.substr(0, layer_end) + ".self_attn.judge_model" + native.substr(layer_end);
}

// DESIGN.md §4 in words, per column group of feature_order. P[h, q, j] is query head h's attention
// probability on candidate j at query q of the chunk.
nlohmann::ordered_json feature_definitions(FeatureSet set) {
  const std::string chunk_sum = "sum over the chunk's W queries of P[h, q, j]";
  auto recent = [&](const char* n) {
    return set == FeatureSet::Recency
               ? "sum over the chunk's last " + std::string(n) + " queries of P[h, q, j]"
               : "equal to sum (" + chunk_sum + "): the authors' code slices the group-head axis where it means "
                 "the query axis, which keeps every query when group_size <= 8";
  };
  return {
      {"P", "P[h, q, j]: softmax attention of query head h at query q of the current chunk over the B + W entries "
            "of the already-evicted cache (causal inside the chunk, scaled by 1/sqrt(head_dim), float32)"},
      {"k", "k0..k{head_dim-1}: the candidate's cached key, after RoPE (and after q/k norm where the model has "
            "one), as float32"},
      {"v", "v0..v{head_dim-1}: the candidate's cached value, as float32"},
      {"max", "max over the chunk's W queries of P[h, q, j]"},
      {"min", "min over the chunk's W queries of P[h, q, j]"},
      {"sum", chunk_sum},
      {"sum16", recent("16")},
      {"sum8", recent("8")},
      {"sum32", recent("32")},
      {"cum", "running total of sum since the entry entered the cache, this chunk included: an entry of the "
              "initial chunk starts at its column sum of the initial chunk's causal attention, a new key at "
              "its column sum of its own chunk's attention; it moves with the entry when the cache is compacted"},
      {"cum_decay", "cum_decay = 0.9 * cum_decay + sum at every chunk, this chunk included; same start values "
                    "and compaction as cum"},
      {"layout", "per KV head: [k (head_dim), v (head_dim), then the 8 statistics statistic-major, each over "
                 "the group's query heads h = 0..group_size-1: max_h0..max_h{G-1}, min_h0, ...]"}};
}

// Ordered, so that the file reads top-down: what it is, the weights, the inputs, the rule, the origin.
nlohmann::ordered_json export_manifest(const ScorerSpec& spec, ExportFormat format, const std::string& provenance_json,
                               int64_t test_vectors, const Protect& protect) {
  const ModelFingerprint& m = spec.base_model;
  const int64_t f = spec.input_dim(), h = spec.hidden, kv = m.kv_heads;
  auto tensor = [&](const char* part, std::vector<int64_t> shape) {
    return nlohmann::ordered_json{{"name", exported_name(format, std::string("layers.{i}.") + part)}, {"shape", shape}};
  };
  nlohmann::ordered_json manifest = {
      {"format", kFormat},
      {"version", kVersion},
      {"naming", format == ExportFormat::Native ? "native" : "reference"},
      {"weights",
       {{"file", weights_file(format)},
        {"dtype", "float32"},
        {"tensors",
         {tensor("fc1.weight", {kv, f, h}), tensor("fc1.bias", {kv, h}), tensor("fc2.weight", {kv, h, 1}),
          tensor("fc2.bias", {kv, 1})}},
        {"score", "per layer i and KV head k: fc2.weight[k]^T GELU_erf(fc1.weight[k]^T x + fc1.bias[k]) + "
                  "fc2.bias[k]; higher = evict first"}}},
      {"features", feature_set_name(spec.features)},
      {"feature_order", feature_names(m.head_dim, spec.group)},
      {"feature_definitions", feature_definitions(spec.features)},
      {"budget", spec.schedule.budget},
      {"interval", spec.schedule.interval},
      {"protect", protect.text()},
      {"trained_protect", spec.protect.text()},
      {"sampling",
       {{"candidates", "every W tokens, once the cache holds B + W entries, per layer and KV head: the B older "
                       "entries but the protected ones; the W newest are never candidates. W of the candidates "
                       "are dropped and the cache is compacted back to B entries (survivors in order, then the W "
                       "newest)"},
        {"protect", "the first `protect` positions of the sequence (a count, or \"prompt\": the whole prompt) "
                    "are kept for good, inside B; at most B - W of them"},
        {"greedy", "drop the W candidates with the highest scores, ties to the lower slot (inference)"},
        {"grpo_rollouts", "softmax over the 2W highest scores, then W drawn without replacement (training)"}}},
      {"head_layout",
       {{"layers", m.layers},
        {"kv_heads", kv},
        {"group_size", spec.group},
        {"head_dim", m.head_dim},
        {"input_dim", f},
        {"hidden", h},
        {"activation", "gelu_erf"}}},
      {"base_model",
       {{"architecture", m.architecture},
        {"layers", m.layers},
        {"heads", m.heads},
        {"kv_heads", m.kv_heads},
        {"head_dim", m.head_dim},
        {"config_sha256", m.config_sha256}}},
      {"provenance", nlohmann::ordered_json::parse(provenance_json)}};
  // Absent, as in the scorer's own manifest, when the scorer was written before weights were fingerprinted.
  if (!m.weights_sha256.empty()) manifest["base_model"]["weights_sha256"] = m.weights_sha256;
  if (test_vectors > 0) {
    manifest["test_vectors"] = {
        {"file", kTestVectorsFile},
        {"count", test_vectors},
        {"tensors",
         {{"layers.{i}.features", "float32 [kv_heads, count, input_dim]: K/V columns ~ N(0, 1), statistic columns "
                                  "~ U[0, 1), seeded"},
          {"layers.{i}.scores", "float32 [kv_heads, count]: this scorer's output for each row"}}}};
  }
  return manifest;
}

// Per layer, seeded pseudo-random candidates and the scorer's scores of them: what an engine's
// implementation of the MLP and of the feature layout can be checked against.
// Refuses a test-vector count whose tensors cannot fit in the memory left, up front with the sizes
// (a huge count was a raw allocator error after the checks): per layer, the random key/value
// columns, the statistics, their concatenation, and the scorer's activations on it.
void check_test_vector_memory(const ScorerSpec& spec, int64_t count) {
  const auto available = available_memory_bytes();
  if (count == 0 || !available) return;
  const double width = 2.0 * static_cast<double>(spec.base_model.head_dim) + 8.0 * static_cast<double>(spec.group);
  const double per_vector = 4.0 * (3 * width + 2 * (kReferenceHidden + 1));
  const double needed = per_vector * static_cast<double>(spec.base_model.kv_heads) * static_cast<double>(count) *
                        static_cast<double>(spec.base_model.layers);
  if (needed <= static_cast<double>(*available)) return;
  throw Error("--test-vectors " + std::to_string(count) + " needs about " + human_bytes(needed) + " of memory (" +
              human_bytes(needed / static_cast<double>(count)) + " per vector over the layers and KV heads), more than the " +
              human_bytes(static_cast<double>(*available)) + " available; a few thousand check an implementation");
}

std::vector<std::pair<std::string, at::Tensor>> test_vectors(LearnedScorer& scorer, int64_t count) {
  const ScorerSpec& spec = scorer.spec();
  const int64_t kv = spec.base_model.kv_heads, d = spec.base_model.head_dim;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(kTestVectorSeed);
  c10::NoGradGuard no_grad;
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (int64_t l = 0; l < spec.base_model.layers; ++l) {
    const at::Tensor kv_columns = at::randn({kv, count, 2 * d}, gen, at::kFloat);
    const at::Tensor statistics = at::rand({kv, count, 8 * spec.group}, gen, at::kFloat);
    const at::Tensor features = at::cat({kv_columns, statistics}, -1);
    const std::string p = "layers." + std::to_string(l) + ".";
    out.emplace_back(p + "features", features);
    out.emplace_back(p + "scores", scorer.forward(l, features));
  }
  return out;
}

void check_model(const ScorerSpec& spec, const std::string& checkpoint, const std::string& model_dir) {
  const Checkpoint model = load_checkpoint(model_dir);
  const ModelFingerprint fp = fingerprint(model);
  if (!same_model(spec.base_model, fp, (fs::path(checkpoint) / "scorer.json").string())) {
    throw Error("scorer " + checkpoint + " was trained for another model: the scorer's is " +
                spec.base_model.describe() + "; --model " + model_dir + " is " + fp.describe());
  }
}

}  // namespace

ExportFormat parse_export_format(const std::string& name) {
  if (name == "native") return ExportFormat::Native;
  if (name == "reference") return ExportFormat::Reference;
  throw Error("--format \"" + name + "\" is unknown, expected native or reference");
}

void export_scorer(const ExportRequest& request) {
  if (request.test_vectors < 0) {
    throw Error("--test-vectors is " + std::to_string(request.test_vectors) + ", expected 0 or more");
  }
  // Everything that can refuse the export is checked before the output directory is started.
  check_out(request);
  const ScorerSpec spec = LearnedScorer::read_spec(request.checkpoint);
  check_test_vector_memory(spec, request.test_vectors);
  if (request.format == ExportFormat::Reference) {
    if (spec.features != FeatureSet::Reference) {
      throw Error("--format reference needs a scorer trained with features: reference; " + request.checkpoint +
                  " uses features: " + feature_set_name(spec.features) +
                  ", and the authors' code computes feature rows 4-6 (sum16, sum8, sum32) as the full sum over the "
                  "chunk, not over its last queries (DESIGN.md §4)");
    }
    if (spec.hidden != kReferenceHidden) {
      throw Error("--format reference needs hidden " + std::to_string(kReferenceHidden) +
                  " (the authors' scorer width); " + request.checkpoint + " has " + std::to_string(spec.hidden));
    }
  }
  if (!request.model.empty()) check_model(spec, request.checkpoint, request.model);
  const Protect protect = request.protect.empty() ? spec.protect : Protect::parse(request.protect);
  LearnedScorer scorer = LearnedScorer::load(request.checkpoint, spec);
  const std::string provenance = LearnedScorer::read_provenance(request.checkpoint);

  std::vector<std::pair<std::string, at::Tensor>> weights;
  for (const auto& [name, tensor] : scorer.named_parameters()) {
    weights.emplace_back(exported_name(request.format, name), tensor.detach());
  }
  AtomicOutput out(request.out);
  const fs::path dir(out.temp_path());
  fs::create_directories(dir);
  write_safetensors((dir / weights_file(request.format)).string(), weights, {{"format", "pt"}});
  if (request.test_vectors > 0) {
    write_safetensors((dir / kTestVectorsFile).string(), test_vectors(scorer, request.test_vectors),
                      {{"format", "pt"}});
  }
  write_text_file((dir / kManifestFile).string(),
                  export_manifest(spec, request.format, provenance, request.test_vectors, protect).dump(2) + "\n");
  out.commit();
}

}  // namespace foresight
