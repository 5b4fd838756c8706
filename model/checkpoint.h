#pragma once
#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <vector>

#include "model/config.h"

namespace foresight {

// One tensor a checkpoint of a given configuration must hold, by its HF name.
struct WeightSpec {
  std::string name;
  std::vector<int64_t> shape;
  bool is_norm;  // RMSNorm scales: initialised around 1, not around 0
};

// Every tensor the architecture reads, in HF naming; the one list both the loader and `init` use.
std::vector<WeightSpec> weight_specs(const ModelConfig& config);

// A HF checkpoint directory: config.json plus model.safetensors, or shards listed by
// model.safetensors.index.json. Weights are zero-copy views of the memory-mapped files.
struct Checkpoint {
  std::string dir;
  std::string config_json;  // the file's exact text (part of the model fingerprint)
  ModelConfig config;
  std::map<std::string, at::Tensor> weights;  // exactly weight_specs(config), shapes checked
};

Checkpoint load_checkpoint(const std::string& dir);

// Writes a random-weight checkpoint (config.json + model.safetensors) that transformers loads
// unchanged. Weights ~ N(0, init_std); norm scales ~ 1 + N(0, init_std). The directory appears
// only when complete.
void write_random_checkpoint(const ModelConfig& config, const std::string& dir, uint64_t seed,
                             double init_std, at::ScalarType dtype);

}  // namespace foresight
