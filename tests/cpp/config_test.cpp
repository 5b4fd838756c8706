#include "model/config.h"

#include <gtest/gtest.h>

#include "common/error.h"

namespace foresight {
namespace {

std::string error_of(const std::string& json) {
  try {
    parse_model_config(json, "config.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

const char* kValid = R"({"model_type": "qwen3", "vocab_size": 10, "hidden_size": 8,
  "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
  "num_key_value_heads": 1, "head_dim": 4, "max_position_embeddings": 32})";

TEST(ModelConfig, ParsesQwen3WithExplicitHeadDim) {
  const ModelConfig c = parse_model_config(kValid, "config.json");
  EXPECT_EQ(c.arch, Architecture::Qwen3);
  EXPECT_EQ(c.head_dim, 4);
  EXPECT_EQ(c.group_size(), 2);
  EXPECT_TRUE(c.qk_norm);
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_FALSE(c.tie_word_embeddings);  // Qwen3Config's default (transformers 4.57)
}

// Keys a config.json may leave out take the defaults of transformers 4.57's Qwen2Config,
// Qwen3Config and LlamaConfig (their __init__ signatures): untied embeddings everywhere;
// num_key_value_heads 32 for Qwen, num_attention_heads for Llama; head_dim 128 for Qwen3,
// hidden_size / num_attention_heads otherwise.
TEST(ModelConfig, MissingKeysTakeTransformersDefaults) {
  const std::string rest = R"(", "vocab_size": 10, "hidden_size": 256, "intermediate_size": 16,
    "num_hidden_layers": 1, "num_attention_heads": 64, "max_position_embeddings": 32})";
  const struct {
    const char* arch;
    int64_t kv_heads, head_dim;
  } cases[] = {{"qwen2", 32, 4}, {"qwen3", 32, 128}, {"llama", 64, 4}};
  for (const auto& c : cases) {
    const ModelConfig got = parse_model_config(std::string(R"({"model_type": ")") + c.arch + rest, "config.json");
    EXPECT_FALSE(got.tie_word_embeddings) << c.arch;
    EXPECT_EQ(got.num_kv_heads, c.kv_heads) << c.arch;
    EXPECT_EQ(got.head_dim, c.head_dim) << c.arch;
  }
}

TEST(ModelConfig, RoundTripsThroughJson) {
  ModelConfig c = parse_model_config(kValid, "config.json");
  c.arch = Architecture::Llama;
  c.rope_scaling = Llama3RopeScaling{};
  c.rope_scaling->original_max_position_embeddings = 64;
  const ModelConfig back = parse_model_config(model_config_to_json(c), "x");
  EXPECT_EQ(back.arch, Architecture::Llama);
  ASSERT_TRUE(back.rope_scaling.has_value());
  EXPECT_EQ(back.rope_scaling->original_max_position_embeddings, 64);
  EXPECT_EQ(back.num_kv_heads, 1);
}

TEST(ModelConfig, ErrorsNameTheFieldAndTheValue) {
  EXPECT_NE(error_of(R"({"model_type": "mistral"})").find("\"model_type\" is \"mistral\""), std::string::npos);
  std::string j = kValid;
  EXPECT_NE(error_of(j.replace(j.find("\"num_key_value_heads\": 1"), 24, "\"num_key_value_heads\": 3"))
                .find("num_key_value_heads"),
            std::string::npos);
  j = kValid;
  j.insert(1, R"("rope_scaling": {"rope_type": "yarn", "factor": 4},)");
  EXPECT_NE(error_of(j).find("yarn"), std::string::npos);
  j = kValid;
  j.insert(1, R"("hidden_act": "gelu",)");
  EXPECT_NE(error_of(j).find("hidden_act"), std::string::npos);
  EXPECT_NE(error_of(R"({"model_type": "llama", "vocab_size": 10})").find("hidden_size"), std::string::npos);
  EXPECT_NE(error_of("{not json").find("not valid JSON"), std::string::npos);
}

}  // namespace
}  // namespace foresight
