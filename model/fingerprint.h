#pragma once
#include <cstdint>
#include <string>

#include "model/checkpoint.h"
#include "model/config.h"

namespace foresight {

// What identifies a base model to the files derived from it (golden traces, scorers): its layout,
// the SHA-256 of its config.json text and a digest of its weights (weights_digest), so that a
// fine-tune with the base model's config.json is another model.
struct ModelFingerprint {
  std::string architecture;
  int64_t layers = 0, heads = 0, kv_heads = 0, head_dim = 0;
  std::string config_sha256;
  std::string weights_sha256;  // empty in files written before the weights were fingerprinted

  bool operator==(const ModelFingerprint&) const = default;
  std::string describe() const;  // "qwen3, 36 layers, 32/8 heads, head_dim 128, config sha256 1a2b3c4d..."
};

ModelFingerprint fingerprint(const Checkpoint& checkpoint);

// SHA-256 over every tensor the model reads, in name order: its name, dtype and shape, then its
// bytes when it holds at most kWeightSampleBytes * kWeightSamples of them, else kWeightSamples
// windows of kWeightSampleBytes spread evenly from its first byte to its last. A few KB per
// tensor: a 16 GB checkpoint costs about 2 MB of reads. Layout in data/README.md.
inline constexpr int64_t kWeightSamples = 4, kWeightSampleBytes = 1024;
std::string weights_digest(const Checkpoint& checkpoint);

// Whether `actual` (a loaded model's) is the model that `recorded` (read from `source`) names. A
// record without weights_sha256 is matched on the layout and config hash alone, with a one-line
// warning on stderr that the weights cannot be checked.
bool same_model(const ModelFingerprint& recorded, const ModelFingerprint& actual, const std::string& source);

// An optional expectation a stage config states about its model ("expect_model" keys); a model of
// another layout is refused before any work.
struct ModelExpectation {
  std::string architecture;  // empty: any
  int64_t layers = 0, heads = 0, kv_heads = 0, head_dim = 0;  // 0: any

  void check(const ModelConfig& config, const std::string& model_dir) const;
};

}  // namespace foresight
