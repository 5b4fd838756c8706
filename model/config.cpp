#include "model/config.h"

#include <nlohmann/json.hpp>

#include "common/error.h"

namespace foresight {

namespace {

using nlohmann::json;

struct ArchInfo {
  Architecture arch;
  const char* model_type;
  const char* class_name;
};

constexpr ArchInfo kArchitectures[] = {
    {Architecture::Qwen2, "qwen2", "Qwen2ForCausalLM"},
    {Architecture::Qwen3, "qwen3", "Qwen3ForCausalLM"},
    {Architecture::Llama, "llama", "LlamaForCausalLM"},
};

const ArchInfo& info(Architecture arch) {
  for (const auto& a : kArchitectures) {
    if (a.arch == arch) return a;
  }
  throw Error("unknown architecture");
}

class FieldReader {
 public:
  FieldReader(const json& j, std::string source) : j_(j), source_(std::move(source)) {}

  [[noreturn]] void fail(const std::string& key, const std::string& problem) const {
    throw Error(source_ + ": field \"" + key + "\" " + problem);
  }

  bool has(const std::string& key) const { return j_.contains(key) && !j_.at(key).is_null(); }

  int64_t positive_int(const std::string& key) const {
    if (!has(key)) fail(key, "is missing (expected a positive integer)");
    const json& v = j_.at(key);
    if (!v.is_number_integer() || v.get<int64_t>() <= 0) {
      fail(key, "is " + v.dump() + ", expected a positive integer");
    }
    return v.get<int64_t>();
  }

  double positive_number(const std::string& key, double fallback) const {
    if (!has(key)) return fallback;
    const json& v = j_.at(key);
    if (!v.is_number() || v.get<double>() <= 0) {
      fail(key, "is " + v.dump() + ", expected a positive number");
    }
    return v.get<double>();
  }

  bool boolean(const std::string& key, bool fallback) const {
    if (!has(key)) return fallback;
    const json& v = j_.at(key);
    if (!v.is_boolean()) fail(key, "is " + v.dump() + ", expected true or false");
    return v.get<bool>();
  }

 private:
  const json& j_;
  std::string source_;
};

// rope_scaling of type "default" (or null) means no scaling.
std::optional<Llama3RopeScaling> parse_rope_scaling(const json& rs, const FieldReader& top,
                                                    const std::string& source) {
  if (!rs.is_object()) top.fail("rope_scaling", "is " + rs.dump() + ", expected an object or null");
  const std::string type = rs.value("rope_type", rs.value("type", std::string("default")));
  if (type == "default") return std::nullopt;
  if (type != "llama3") {
    top.fail("rope_scaling", "has rope_type \"" + type + "\", expected \"llama3\" (the only scaling supported)");
  }
  FieldReader r(rs, source + " rope_scaling");
  Llama3RopeScaling s;
  s.factor = r.positive_number("factor", s.factor);
  s.low_freq_factor = r.positive_number("low_freq_factor", s.low_freq_factor);
  s.high_freq_factor = r.positive_number("high_freq_factor", s.high_freq_factor);
  s.original_max_position_embeddings = r.positive_int("original_max_position_embeddings");
  if (s.high_freq_factor <= s.low_freq_factor) {
    r.fail("high_freq_factor", "must be greater than low_freq_factor");
  }
  return s;
}

}  // namespace

const char* architecture_name(Architecture arch) { return info(arch).model_type; }

Architecture parse_architecture(const std::string& name) {
  for (const auto& a : kArchitectures) {
    if (name == a.model_type) return a.arch;
  }
  throw Error("unknown architecture \"" + name + "\", expected qwen2, qwen3 or llama");
}

ModelConfig parse_model_config(const std::string& json_text, const std::string& source) {
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::exception& e) {
    throw Error(source + ": not valid JSON (" + e.what() + ")");
  }
  if (!j.is_object()) throw Error(source + ": expected a JSON object");
  const FieldReader r(j, source);

  ModelConfig c;
  const std::string model_type = j.value("model_type", std::string());
  bool known = false;
  for (const auto& a : kArchitectures) {
    if (model_type == a.model_type) {
      c.arch = a.arch;
      known = true;
    }
  }
  if (!known) {
    r.fail("model_type", "is \"" + model_type + "\", expected one of \"qwen2\", \"qwen3\", \"llama\"");
  }
  c.vocab_size = r.positive_int("vocab_size");
  c.hidden_size = r.positive_int("hidden_size");
  c.intermediate_size = r.positive_int("intermediate_size");
  c.num_layers = r.positive_int("num_hidden_layers");
  c.num_heads = r.positive_int("num_attention_heads");
  // Defaults of a key config.json leaves out are transformers' (4.57): Qwen2Config and Qwen3Config
  // default num_key_value_heads to 32, LlamaConfig to num_attention_heads.
  c.num_kv_heads = r.has("num_key_value_heads") ? r.positive_int("num_key_value_heads")
                   : c.arch == Architecture::Llama ? c.num_heads
                                                   : 32;
  if (c.num_heads % c.num_kv_heads != 0) {
    r.fail("num_key_value_heads", (r.has("num_key_value_heads") ? "is " : "is missing, so transformers' default ") +
                                      std::to_string(c.num_kv_heads) + ", but expected a divisor of num_attention_heads (" +
                                      std::to_string(c.num_heads) + ")");
  }
  if (r.has("head_dim")) {
    c.head_dim = r.positive_int("head_dim");
  } else if (c.arch == Architecture::Qwen3) {
    c.head_dim = 128;  // Qwen3Config's default; Qwen2 and Llama derive it
  } else {
    if (c.hidden_size % c.num_heads != 0) {
      r.fail("head_dim", "is missing and hidden_size is not a multiple of num_attention_heads");
    }
    c.head_dim = c.hidden_size / c.num_heads;
  }
  if (c.head_dim % 2 != 0) r.fail("head_dim", "is " + std::to_string(c.head_dim) + ", expected an even number (RoPE)");
  c.max_position_embeddings = r.positive_int("max_position_embeddings");
  c.rms_norm_eps = r.positive_number("rms_norm_eps", 1e-6);
  c.rope_theta = r.positive_number("rope_theta", 10000.0);
  c.tie_word_embeddings = r.boolean("tie_word_embeddings", false);  // all three configs default to untied
  if (r.has("rope_scaling")) c.rope_scaling = parse_rope_scaling(j.at("rope_scaling"), r, source);
  const std::string act = j.value("hidden_act", std::string("silu"));
  if (act != "silu") r.fail("hidden_act", "is \"" + act + "\", expected \"silu\"");
  if (r.boolean("mlp_bias", false)) r.fail("mlp_bias", "is true, expected false (not supported)");
  if (c.arch == Architecture::Qwen2) {
    if (r.boolean("use_sliding_window", false)) {
      r.fail("use_sliding_window", "is true, expected false (sliding-window attention is not supported)");
    }
    c.qkv_bias = true;
  } else {
    c.qkv_bias = c.o_bias = r.boolean("attention_bias", false);
  }
  c.qk_norm = c.arch == Architecture::Qwen3;
  if (r.has("eos_token_id")) {
    const json& e = j.at("eos_token_id");
    if (e.is_number_integer()) {
      c.eos_token_ids = {e.get<int64_t>()};
    } else if (e.is_array()) {
      c.eos_token_ids = e.get<std::vector<int64_t>>();
    }
  }
  c.torch_dtype = j.value("torch_dtype", j.value("dtype", std::string("float32")));
  return c;
}

std::string model_config_to_json(const ModelConfig& c) {
  const ArchInfo& a = info(c.arch);
  json j = {{"architectures", {a.class_name}},
            {"model_type", a.model_type},
            {"vocab_size", c.vocab_size},
            {"hidden_size", c.hidden_size},
            {"intermediate_size", c.intermediate_size},
            {"num_hidden_layers", c.num_layers},
            {"num_attention_heads", c.num_heads},
            {"num_key_value_heads", c.num_kv_heads},
            {"head_dim", c.head_dim},
            {"max_position_embeddings", c.max_position_embeddings},
            {"rms_norm_eps", c.rms_norm_eps},
            {"rope_theta", c.rope_theta},
            {"tie_word_embeddings", c.tie_word_embeddings},
            {"hidden_act", "silu"},
            {"torch_dtype", c.torch_dtype},
            {"bos_token_id", 0},
            {"eos_token_id", c.eos_token_ids.empty() ? json(nullptr) : json(c.eos_token_ids.front())}};
  if (c.arch == Architecture::Qwen2) {
    j["use_sliding_window"] = false;
  } else {
    j["attention_bias"] = c.o_bias;
  }
  if (c.arch == Architecture::Llama) j["mlp_bias"] = false;
  if (c.rope_scaling) {
    j["rope_scaling"] = {{"rope_type", "llama3"},
                         {"factor", c.rope_scaling->factor},
                         {"low_freq_factor", c.rope_scaling->low_freq_factor},
                         {"high_freq_factor", c.rope_scaling->high_freq_factor},
                         {"original_max_position_embeddings",
                          c.rope_scaling->original_max_position_embeddings}};
  } else {
    j["rope_scaling"] = nullptr;
  }
  return j.dump(2);
}

}  // namespace foresight
