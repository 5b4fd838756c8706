#include "model/transformer.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"
#include "model/kv_cache.h"
#include "model/token_metrics.h"

namespace foresight {
namespace {

namespace fs = std::filesystem;

ModelConfig tiny_config(Architecture arch, int64_t kv_heads) {
  ModelConfig c;
  c.arch = arch;
  c.vocab_size = 97;
  c.hidden_size = 48;
  c.intermediate_size = 64;
  c.num_layers = 2;
  c.num_heads = 6;
  c.num_kv_heads = kv_heads;
  c.head_dim = 8;
  c.max_position_embeddings = 256;
  c.qkv_bias = arch == Architecture::Qwen2;
  c.qk_norm = arch == Architecture::Qwen3;
  return c;
}

std::string fresh_dir(const std::string& name) {
  const fs::path p = fs::temp_directory_path() / ("foresight_test_" + name);
  fs::remove_all(p);
  return p.string();
}

class Decoding : public ::testing::TestWithParam<std::tuple<Architecture, int64_t>> {};

// Incremental decoding through the KV cache, in chunks of 1 and 5 tokens, must give the logits of
// the one-shot causal forward.
TEST_P(Decoding, IncrementalMatchesFullForward) {
  const auto [arch, kv_heads] = GetParam();
  const std::string dir = fresh_dir(std::string("decode_") + architecture_name(arch) + std::to_string(kv_heads));
  write_random_checkpoint(tiny_config(arch, kv_heads), dir, 11, 0.2, at::kFloat);
  const Transformer model = Transformer::load(dir, {});
  at::manual_seed(17);
  const at::Tensor ids = at::randint(97, {23}, at::kLong);
  const at::Tensor full = model.logits(model.forward(ids, 0, no_cache_attention()));
  for (const int64_t chunk : {1, 5}) {
    KVCache cache(model.config(), 23, model.options());
    std::vector<at::Tensor> parts;
    for (int64_t s = 0; s < 23; s += chunk) {
      parts.push_back(model.logits(model.forward(ids.slice(0, s, s + chunk), s, cache.attention())));
    }
    // Logits are O(10) here; float32 sums in another order differ by a few 1e-6.
    EXPECT_LT((at::cat(parts) - full).abs().max().item<double>(), 1e-4) << "chunk " << chunk;
  }
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Architectures, Decoding,
                         ::testing::Combine(::testing::Values(Architecture::Qwen2, Architecture::Qwen3,
                                                              Architecture::Llama),
                                            ::testing::Values(6, 2)),
                         [](const auto& info) {
                           return std::string(architecture_name(std::get<0>(info.param))) + "_G" +
                                  std::to_string(6 / std::get<1>(info.param));
                         });

TEST(TokenMetrics, MatchesLogSoftmaxOfTheLogits) {
  const std::string dir = fresh_dir("metrics");
  write_random_checkpoint(tiny_config(Architecture::Llama, 3), dir, 5, 0.3, at::kFloat);
  const Transformer model = Transformer::load(dir, {});
  at::manual_seed(5);
  const at::Tensor ids = at::randint(97, {10}, at::kLong);
  const at::Tensor hidden = model.forward(ids, 0, no_cache_attention());
  const TokenMetrics m = token_metrics(model, hidden, ids, /*chunk=*/4);
  const at::Tensor logits = model.logits(hidden).to(at::kDouble);
  for (int64_t t = 0; t < 9; ++t) {
    const at::Tensor p = at::softmax(logits[t], -1);
    EXPECT_NEAR(m.nll[t].item<double>(), -std::log(p[ids[t + 1].item<int64_t>()].item<double>()), 1e-5);
    EXPECT_NEAR(m.entropy[t].item<double>(), -(p * p.log()).sum().item<double>(), 1e-5);
  }
  fs::remove_all(dir);
}

// The loader's promise (checkpoint.h): weights are views of the memory-mapped files, never copies.
// The kernel's own list of this process's mappings says where model.safetensors lies.
TEST(Checkpoint, WeightsViewTheMappedFile) {
  const std::string dir = fresh_dir("zerocopy");
  write_random_checkpoint(tiny_config(Architecture::Qwen3, 2), dir, 1, 0.02, at::kFloat);
  const Checkpoint ckpt = load_checkpoint(dir);
  const std::string file = fs::canonical(fs::path(dir) / "model.safetensors").string();
  std::vector<std::pair<uintptr_t, uintptr_t>> ranges;
  std::ifstream maps("/proc/self/maps");
  for (std::string line; std::getline(maps, line);) {
    if (line.size() < file.size() || line.compare(line.size() - file.size(), file.size(), file) != 0) continue;
    const std::size_t dash = line.find('-');
    ranges.emplace_back(std::stoull(line.substr(0, dash), nullptr, 16),
                        std::stoull(line.substr(dash + 1, line.find(' ') - dash - 1), nullptr, 16));
  }
  ASSERT_FALSE(ranges.empty()) << file << " is not mapped";
  for (const auto& [name, w] : ckpt.weights) {
    const auto begin = reinterpret_cast<uintptr_t>(w.data_ptr()), end = begin + w.nbytes();
    const bool inside = std::any_of(ranges.begin(), ranges.end(), [&](const auto& r) { return r.first <= begin && end <= r.second; });
    EXPECT_TRUE(inside) << name << " is not a view of the mapped file";
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace foresight
