#pragma once
#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "cache/cache_step.h"
#include "kernels/chunk_statistics.h"

namespace foresight {

// Which attention statistics feed the scorer (DESIGN.md §4). Recency: rows 4-6 are sums over the
// chunk's last 16, 8 and 32 queries, the paper's intent. Reference: rows 4-6 repeat the full sum,
// which is what the authors' code computes for G <= 8 (it refuses G > 8).
enum class FeatureSet { Recency, Reference };

const char* feature_set_name(FeatureSet set);            // "recency" | "reference"
FeatureSet parse_feature_set(const std::string& name);  // throws on anything else
void check_feature_set(FeatureSet set, int64_t group);  // Reference refuses G > 8

// Scorer input width: K and V (head_dim each) and 8 statistics per query head of the group.
inline int64_t feature_dim(int64_t head_dim, int64_t group) { return 2 * head_dim + 8 * group; }

// Names of the feature columns in order ("k0".., "v0".., "max_h0".., "min_h0", ...), for manifests.
std::vector<std::string> feature_names(int64_t head_dim, int64_t group);

// The statistics in a feature tensor, in their column order (each G columns wide).
enum class Statistic : int64_t { Max, Min, Sum, Sum16, Sum8, Sum32, Cum, CumDecay };

// One statistic of every candidate, [Hkv, B, G], and the candidates' keys, [Hkv, B, d], read back
// from features [Hkv, B, F] (F = 2d + 8G): the heuristic policies need no other input.
at::Tensor feature_statistic(const at::Tensor& features, Statistic statistic, int64_t group);
at::Tensor feature_keys(const at::Tensor& features, int64_t group);

// The scorer input of the B candidates at one step: [K | V | stats], float32 [Hkv, B, F].
// stats: the candidates' chunk statistics, [Hkv, B, G] each (rows 4-6 are used by Recency only);
// cum, cum_decay: running totals already including this chunk, float32 [Hkv, B, G];
// keys, values: the candidates' cached K (post-RoPE) and V, [Hkv, B, d].
at::Tensor candidate_features(const ChunkStatistics& stats, const at::Tensor& cum, const at::Tensor& cum_decay,
                              const at::Tensor& keys, const at::Tensor& values, FeatureSet set);

// The same from a budgeted cache's eviction step (cache/cache_step.h).
at::Tensor candidate_features(const CacheStep& step, FeatureSet set);

// The same from the chunk's attention on the candidates, float32 [Hkv, G, T, B].
at::Tensor candidate_features(const at::Tensor& probs, const at::Tensor& cum, const at::Tensor& cum_decay,
                              const at::Tensor& keys, const at::Tensor& values, FeatureSet set);

}  // namespace foresight
