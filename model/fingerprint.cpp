#include "model/fingerprint.h"

#include "common/error.h"
#include "common/sha256.h"

namespace foresight {

std::string ModelFingerprint::describe() const {
  return architecture + ", " + std::to_string(layers) + " layers, " + std::to_string(heads) + "/" +
         std::to_string(kv_heads) + " heads, head_dim " + std::to_string(head_dim) + ", config sha256 " +
         config_sha256.substr(0, 12);
}

ModelFingerprint fingerprint(const ModelConfig& c, const std::string& config_json) {
  return {architecture_name(c.arch), c.num_layers, c.num_heads, c.num_kv_heads, c.head_dim,
          sha256_hex(config_json)};
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
