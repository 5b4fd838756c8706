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
  EXPECT_TRUE(c.tie_word_embeddings);  // HF's default for Qwen3
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
