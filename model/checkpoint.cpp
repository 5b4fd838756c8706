#include "model/checkpoint.h"

#include <ATen/ATen.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/atomic_output.h"
#include "common/error.h"
#include "common/text_file.h"
#include "common/safetensors.h"

namespace foresight {

namespace fs = std::filesystem;

namespace {

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw Error("cannot read " + path.string());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string shape_text(at::IntArrayRef shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// Maps every tensor name to the shard file that holds it.
std::map<std::string, std::shared_ptr<SafetensorsFile>> open_shards(const fs::path& dir) {
  std::map<std::string, std::shared_ptr<SafetensorsFile>> by_name;
  const fs::path single = dir / "model.safetensors";
  const fs::path index = dir / "model.safetensors.index.json";
  if (fs::exists(single)) {
    auto file = std::make_shared<SafetensorsFile>(single.string());
    for (const auto& name : file->names()) by_name[name] = file;
    return by_name;
  }
  if (!fs::exists(index)) {
    throw Error(dir.string() + ": no model.safetensors or model.safetensors.index.json");
  }
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_text(index));
  } catch (const nlohmann::json::exception& e) {
    throw Error(index.string() + ": not valid JSON (" + e.what() + ")");
  }
  if (!j.contains("weight_map") || !j["weight_map"].is_object()) {
    throw Error(index.string() + ": field \"weight_map\" is missing (expected an object)");
  }
  std::map<std::string, std::shared_ptr<SafetensorsFile>> shards;
  for (const auto& [name, shard] : j["weight_map"].items()) {
    const std::string shard_name = shard.get<std::string>();
    auto& file = shards[shard_name];
    if (!file) {
      if (!fs::exists(dir / shard_name)) {
        throw Error(index.string() + ": names shard " + shard_name + ", which is missing");
      }
      file = std::make_shared<SafetensorsFile>((dir / shard_name).string());
    }
    if (!file->contains(name)) {
      throw Error(index.string() + ": says " + name + " is in " + shard_name + ", which lacks it");
    }
    by_name[name] = file;
  }
  return by_name;
}

}  // namespace

std::vector<WeightSpec> weight_specs(const ModelConfig& c) {
  const int64_t h = c.hidden_size, q = c.num_heads * c.head_dim, kv = c.num_kv_heads * c.head_dim;
  std::vector<WeightSpec> specs = {{"model.embed_tokens.weight", {c.vocab_size, h}, false}};
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    specs.push_back({p + "input_layernorm.weight", {h}, true});
    specs.push_back({p + "self_attn.q_proj.weight", {q, h}, false});
    specs.push_back({p + "self_attn.k_proj.weight", {kv, h}, false});
    specs.push_back({p + "self_attn.v_proj.weight", {kv, h}, false});
    specs.push_back({p + "self_attn.o_proj.weight", {h, q}, false});
    if (c.qkv_bias) {
      specs.push_back({p + "self_attn.q_proj.bias", {q}, false});
      specs.push_back({p + "self_attn.k_proj.bias", {kv}, false});
      specs.push_back({p + "self_attn.v_proj.bias", {kv}, false});
    }
    if (c.o_bias) specs.push_back({p + "self_attn.o_proj.bias", {h}, false});
    if (c.qk_norm) {
      specs.push_back({p + "self_attn.q_norm.weight", {c.head_dim}, true});
      specs.push_back({p + "self_attn.k_norm.weight", {c.head_dim}, true});
    }
    specs.push_back({p + "post_attention_layernorm.weight", {h}, true});
    specs.push_back({p + "mlp.gate_proj.weight", {c.intermediate_size, h}, false});
    specs.push_back({p + "mlp.up_proj.weight", {c.intermediate_size, h}, false});
    specs.push_back({p + "mlp.down_proj.weight", {h, c.intermediate_size}, false});
  }
  specs.push_back({"model.norm.weight", {h}, true});
  if (!c.tie_word_embeddings) specs.push_back({"lm_head.weight", {c.vocab_size, h}, false});
  return specs;
}

Checkpoint load_checkpoint(const std::string& dir) {
  const fs::path root(dir);
  if (!fs::is_directory(root)) throw Error("model directory not found: " + dir);
  const fs::path config_path = root / "config.json";
  if (!fs::exists(config_path)) throw Error(dir + ": config.json is missing");

  Checkpoint ckpt;
  ckpt.dir = dir;
  ckpt.config_json = read_text(config_path);
  ckpt.config = parse_model_config(ckpt.config_json, config_path.string());
  const auto shards = open_shards(root);
  for (const WeightSpec& spec : weight_specs(ckpt.config)) {
    const auto it = shards.find(spec.name);
    if (it == shards.end()) throw Error(dir + ": checkpoint lacks tensor " + spec.name);
    at::Tensor t = it->second->tensor(spec.name);
    if (t.sizes() != at::IntArrayRef(spec.shape)) {
      throw Error(dir + ": tensor " + spec.name + " has shape " + shape_text(t.sizes()) +
                  ", expected " + shape_text(spec.shape) + " from config.json");
    }
    if (!at::isFloatingType(t.scalar_type())) {
      throw Error(dir + ": tensor " + spec.name + " is not floating point");
    }
    check_finite_tensor(t, it->second->path(), spec.name);
    ckpt.weights.emplace(spec.name, std::move(t));
  }
  return ckpt;
}

void write_random_checkpoint(const ModelConfig& config, const std::string& dir, uint64_t seed,
                             double init_std, at::ScalarType dtype) {
  if (fs::exists(dir)) throw Error("output directory already exists: " + dir);
  ModelConfig stored = config;
  stored.torch_dtype = dtype == at::kBFloat16 ? "bfloat16" : dtype == at::kHalf ? "float16" : "float32";
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const WeightSpec& spec : weight_specs(stored)) {
    at::Tensor t = at::normal(0.0, init_std, spec.shape, gen, at::kFloat);
    if (spec.is_norm) t.add_(1.0);
    tensors.emplace_back(spec.name, t.to(dtype));
  }
  AtomicOutput out(dir);
  fs::create_directories(out.temp_path());
  write_text_file((fs::path(out.temp_path()) / "config.json").string(), model_config_to_json(stored) + "\n");
  write_safetensors((fs::path(out.temp_path()) / "model.safetensors").string(), tensors,
                    {{"format", "pt"}});
  out.commit();
}

}  // namespace foresight
