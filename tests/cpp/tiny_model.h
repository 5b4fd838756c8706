#pragma once
// A tiny random Qwen3 checkpoint written in the HF format and loaded through the real loader,
// plus random token ids: the model the C++ tests run the cache and training code on.
#include <ATen/ATen.h>

#include <filesystem>
#include <string>
#include <vector>

#include <unistd.h>

#include "model/checkpoint.h"
#include "model/transformer.h"

namespace foresight::test_support {

inline Transformer tiny_model(const std::string& name, int64_t heads, int64_t kv_heads) {
  ModelConfig c;
  c.arch = Architecture::Qwen3;
  c.vocab_size = 64;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_layers = 2;
  c.num_heads = heads;
  c.num_kv_heads = kv_heads;
  c.head_dim = 8;
  c.max_position_embeddings = 256;
  c.qk_norm = true;
  // One directory per process: ctest runs each test case as its own process, two at a time, and
  // two of them writing one shared directory race (the second cannot move its copy into place).
  const std::string dir =
      (std::filesystem::temp_directory_path() / ("foresight_tiny_" + name + "-" + std::to_string(::getpid()))).string();
  std::filesystem::remove_all(dir);
  write_random_checkpoint(c, dir, 3, 0.3, at::kFloat);
  Transformer model = Transformer::load(dir, {});
  std::filesystem::remove_all(dir);  // loaded: the weights are in memory (or mapped, which outlives the name)
  return model;
}

inline std::vector<int64_t> random_ids(int64_t n, int64_t seed) {
  at::manual_seed(seed);
  const at::Tensor t = at::randint(64, {n}, at::kLong);
  return std::vector<int64_t>(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + n);
}

}  // namespace foresight::test_support
