#include "model/fingerprint.h"

#include <ATen/ATen.h>

#include <cstdio>

#include "common/error.h"
#include "common/sha256.h"

namespace foresight {

std::string ModelFingerprint::describe() const {
  return architecture + ", " + std::to_string(layers) + " layers, " + std::to_string(heads) + "/" +
         std::to_string(kv_heads) + " heads, head_dim " + std::to_string(head_dim) + ", config sha256 " +
         config_sha256.substr(0, 12) +
         (weights_sha256.empty() ? std::string(", weights not recorded") : ", weights sha256 " + weights_sha256.substr(0, 12));
}

std::string weights_digest(const Checkpoint& checkpoint) {
  std::string text;
  for (const auto& [name, tensor] : checkpoint.weights) {  // std::map: in name order
    // Checkpoint tensors view the mapped files, so only the sampled pages are read from disk.
    const at::Tensor t = tensor.contiguous();
    text += name + '\n' + c10::toString(t.scalar_type()) + '\n';
    for (std::size_t i = 0; i < t.sizes().size(); ++i) {
      if (i > 0) text += ',';
      text += std::to_string(t.size(static_cast<int64_t>(i)));
    }
    text += '\n';
    const auto* bytes = static_cast<const char*>(t.data_ptr());
    const auto n = static_cast<int64_t>(t.nbytes());
    if (n <= kWeightSamples * kWeightSampleBytes) {
      text.append(bytes, static_cast<std::size_t>(n));
      continue;
    }
    for (int64_t i = 0; i < kWeightSamples; ++i) {
      const int64_t offset = i * (n - kWeightSampleBytes) / (kWeightSamples - 1);
      text.append(bytes + offset, static_cast<std::size_t>(kWeightSampleBytes));
    }
  }
  return sha256_hex(text);
}

ModelFingerprint fingerprint(const Checkpoint& checkpoint) {
  const ModelConfig& c = checkpoint.config;
  return {architecture_name(c.arch), c.num_layers,  c.num_heads, c.num_kv_heads, c.head_dim,
          sha256_hex(checkpoint.config_json), weights_digest(checkpoint)};
}

bool same_model(const ModelFingerprint& recorded, const ModelFingerprint& actual, const std::string& source) {
  if (recorded == actual) return true;
  if (!recorded.weights_sha256.empty()) return false;
  ModelFingerprint without_weights = actual;
  without_weights.weights_sha256.clear();
  if (!(recorded == without_weights)) return false;
  std::fprintf(stderr, "warning: %s records no weights_sha256 (written before weights were fingerprinted): only the "
               "model's layout and config.json are checked, not its weights\n", source.c_str());
  return true;
}

void ModelExpectation::check(const ModelConfig& c, const std::string& model_dir) const {
  auto refuse = [&](const std::string& key, const std::string& want, const std::string& got) {
    throw Error("model " + model_dir + " is not the model this config is for: expect_model." + key +
                " is " + want + ", the checkpoint has " + got);
  };
  if (!architecture.empty() && architecture != architecture_name(c.arch)) {
    refuse("architecture", architecture, architecture_name(c.arch));
  }
  const std::pair<int64_t, int64_t> sizes[] = {
      {layers, c.num_layers}, {heads, c.num_heads}, {kv_heads, c.num_kv_heads}, {head_dim, c.head_dim}};
  const char* names[] = {"layers", "heads", "kv_heads", "head_dim"};
  for (int i = 0; i < 4; ++i) {
    if (sizes[i].first != 0 && sizes[i].first != sizes[i].second) {
      refuse(names[i], std::to_string(sizes[i].first), std::to_string(sizes[i].second));
    }
  }
}

}  // namespace foresight
