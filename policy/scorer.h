#pragma once
#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "cache/schedule.h"
#include "model/fingerprint.h"
#include "policy/features.h"
#include "policy/policy.h"

namespace foresight {

// The shape of a scorer and what it was trained for; stored in every checkpoint's manifest.
struct ScorerSpec {
  ModelFingerprint base_model;
  int64_t group = 1;  // query heads per KV head
  FeatureSet features = FeatureSet::Recency;
  EvictionSchedule schedule;  // budget and interval trained at (schedule.protect unused)
  Protect protect;            // DESIGN.md §2's protect trained at: recorded, not required when applied
  int64_t hidden = 16;

  int64_t input_dim() const { return feature_dim(base_model.head_dim, group); }
};

// The learned eviction scorer of DESIGN.md §4: per layer and KV head, an MLP
// F -> 16 -> GELU (exact erf) -> 1 over [K | V | stats]; output = evictability (higher = drop first).
class LearnedScorer : public EvictionPolicy {
 public:
  // Fresh weights, uniform in +-1/sqrt(fan_in) (torch.nn.Linear's rule), from `seed`.
  LearnedScorer(ScorerSpec spec, uint64_t seed);

  std::string name() const override { return "learned"; }
  at::Tensor score(const StepView& view) override;            // no grad; [Hkv, B]
  at::Tensor forward(int64_t layer, const at::Tensor& features);  // with grad when enabled

  const ScorerSpec& spec() const { return spec_; }
  // fc1.weight [n_kv, F, 16], fc1.bias [n_kv, 16], fc2.weight [n_kv, 16, 1], fc2.bias [n_kv, 1]
  // per layer, named "layers.{i}.fc1.weight" etc.
  std::vector<std::pair<std::string, at::Tensor>> named_parameters() const;
  std::vector<at::Tensor> parameters() const;
  void to(const at::Device& device);

  // Checkpoint: DIR/scorer.safetensors + DIR/scorer.json (manifest: format, version, feature
  // order, B, W, head layout, base-model fingerprint, `provenance`). Written atomically.
  void save(const std::string& dir, const std::string& provenance_json) const;
  // Refuses a checkpoint of another base model, feature set or schedule than `expected` asks for.
  static LearnedScorer load(const std::string& dir, const ScorerSpec& expected);
  // What a checkpoint's manifest says it was trained for, so that a reader that does not know the
  // model in advance (export) can pass it to load(). Refuses a manifest with a missing or malformed
  // field, or a feature order that does not match its own layout.
  static ScorerSpec read_spec(const std::string& dir);
  // The manifest's `provenance` object as JSON text.
  static std::string read_provenance(const std::string& dir);
  // The checkpoint directory this scorer was loaded from ("" for fresh weights), for messages.
  const std::string& source() const { return source_; }

 private:
  struct Layer {
    at::Tensor fc1_weight, fc1_bias, fc2_weight, fc2_bias;
  };
  ScorerSpec spec_;
  std::vector<Layer> layers_;
  std::string source_;
};

// The learned scorer as a registry policy (foresight, foresight_sampled) for decoding and
// evaluation: scores a borrowed scorer, and refuses non-finite ones. Finite weights near 1e30 give
// NaN or inf scores, and the drops would follow NaN order or never pick an -inf slot. The count
// stays on the device at every step (decoding's host reads per step are audited) and finish()
// reads it once, naming the scorer, the first layer and step, and how many.
class CheckedScorerPolicy : public EvictionPolicy {
 public:
  explicit CheckedScorerPolicy(LearnedScorer& scorer) : scorer_(scorer) {}
  std::string name() const override { return scorer_.name(); }
  at::Tensor score(const StepView& view) override;
  void finish() override;

 private:
  LearnedScorer& scorer_;
  std::vector<at::Tensor> bad_;                           // per step scored: its non-finite count
  std::vector<std::pair<int64_t, int64_t>> layer_step_;   // and its layer and eviction step
};

}  // namespace foresight
