#include "policy/features.h"

#include <ATen/ATen.h>

#include "common/error.h"

namespace foresight {

const char* feature_set_name(FeatureSet set) { return set == FeatureSet::Recency ? "recency" : "reference"; }

FeatureSet parse_feature_set(const std::string& name) {
  if (name == "recency") return FeatureSet::Recency;
  if (name == "reference") return FeatureSet::Reference;
  throw Error("feature set \"" + name + "\" is unknown, expected recency or reference");
}

void check_feature_set(FeatureSet set, int64_t group) {
  if (set == FeatureSet::Reference && group > 8) {
    throw Error("features: reference reproduces the authors' code, which breaks for more than 8 query heads "
                "per KV head (this model has " + std::to_string(group) + "); use features: recency");
  }
}

std::vector<std::string> feature_names(int64_t head_dim, int64_t group) {
  std::vector<std::string> names;
  for (const char* part : {"k", "v"}) {
    for (int64_t i = 0; i < head_dim; ++i) names.push_back(part + std::to_string(i));
  }
  for (const char* stat : {"max", "min", "sum", "sum16", "sum8", "sum32", "cum", "cum_decay"}) {
    for (int64_t h = 0; h < group; ++h) names.push_back(std::string(stat) + "_h" + std::to_string(h));
  }
  return names;
}

at::Tensor feature_statistic(const at::Tensor& features, Statistic statistic, int64_t group) {
  const int64_t first = features.size(-1) - 8 * group + static_cast<int64_t>(statistic) * group;
  return features.slice(-1, first, first + group);
}

at::Tensor feature_keys(const at::Tensor& features, int64_t group) {
  return features.slice(-1, 0, (features.size(-1) - 8 * group) / 2);
}

at::Tensor candidate_features(const ChunkStatistics& stats, const at::Tensor& cum, const at::Tensor& cum_decay,
                              const at::Tensor& keys, const at::Tensor& values, FeatureSet set) {
  const bool recency = set == FeatureSet::Recency;
  const at::Tensor stacked = at::stack({stats.max, stats.min, stats.sum, recency ? stats.sum16 : stats.sum,
                                        recency ? stats.sum8 : stats.sum, recency ? stats.sum32 : stats.sum, cum,
                                        cum_decay},
                                       2);  // [Hkv, B, 8, G]: statistic-major once flattened
  return at::cat({keys.to(at::kFloat), values.to(at::kFloat), stacked.flatten(2)}, -1);
}

at::Tensor candidate_features(const CacheStep& step, FeatureSet set) {
  return candidate_features(step.stats, step.cum, step.cum_decay, step.keys, step.values, set);
}

at::Tensor candidate_features(const at::Tensor& probs, const at::Tensor& cum, const at::Tensor& cum_decay,
                              const at::Tensor& keys, const at::Tensor& values, FeatureSet set) {
  return candidate_features(chunk_statistics(probs), cum, cum_decay, keys, values, set);
}

}  // namespace foresight
