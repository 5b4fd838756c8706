#pragma once
#include <cstdint>
#include <string>

#include "model/config.h"

namespace foresight {

// What identifies a base model to the files derived from it (golden traces, scorers): its layout
// and the SHA-256 of its config.json text.
struct ModelFingerprint {
  std::string architecture;
  int64_t layers = 0, heads = 0, kv_heads = 0, head_dim = 0;
  std::string config_sha256;

  bool operator==(const ModelFingerprint&) const = default;
  std::string describe() const;  // "qwen3, 36 layers, 32/8 heads, head_dim 128, config sha256 1a2b3c4d..."
};

ModelFingerprint fingerprint(const ModelConfig& config, const std::string& config_json);

// An optional expectation a stage config states about its model ("expect_model" keys); a model of
// another layout is refused before any work.
struct ModelExpectation {
  std::string architecture;  // empty: any
  int64_t layers = 0, heads = 0, kv_heads = 0, head_dim = 0;  // 0: any

  void check(const ModelConfig& config, const std::string& model_dir) const;
};

}  // namespace foresight
