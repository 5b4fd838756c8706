#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace foresight {

enum class Architecture { Qwen2, Qwen3, Llama };

const char* architecture_name(Architecture arch);  // "qwen2", "qwen3", "llama"
Architecture parse_architecture(const std::string& name);

// Llama 3 style frequency scaling, the only rope_scaling type supported.
struct Llama3RopeScaling {
  double factor = 8.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

// The fields of a HF config.json this runtime uses, validated on parse.
struct ModelConfig {
  Architecture arch = Architecture::Qwen2;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  std::optional<Llama3RopeScaling> rope_scaling;
  bool tie_word_embeddings = false;
  bool qkv_bias = false;  // Qwen2 always; Llama/Qwen3 when attention_bias
  bool o_bias = false;    // Llama/Qwen3 when attention_bias
  bool qk_norm = false;   // Qwen3
  std::vector<int64_t> eos_token_ids;
  std::string torch_dtype = "float32";

  int64_t group_size() const { return num_heads / num_kv_heads; }
};

// Parses config.json text. `source` names the file in errors, which name the field and its value.
ModelConfig parse_model_config(const std::string& json_text, const std::string& source);

// The HF config.json that transformers loads for this configuration.
std::string model_config_to_json(const ModelConfig& config);

}  // namespace foresight
