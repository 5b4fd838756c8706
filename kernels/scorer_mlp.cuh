#pragma once
// Launcher of the learned scorer's forward (DESIGN.md §4, §9 kernel 4) with the feature assembly
// fused in: the [K | V | stats] rows are read from their sources tile by tile and never stored.
// Raw pointers only, so that the LibTorch layer (scorer_mlp_op.cpp) includes this on any build.
#include <cstdint>

#include "kernels/element_type.h"

namespace foresight {

inline constexpr int64_t kScorerMlpMaxHidden = 32;  // the widest hidden layer the kernel holds in registers

// Row r (KV head h = r % heads; rows = rollouts x heads), candidate b, feature row
// x = [keys[r, b, :dim] | values[r, b, :dim] | stats[r, b, :stat_width]], F = 2 dim + stat_width:
//   scores[r, b] = fc2_bias[h] + sum_j fc2_weight[h, j] gelu(fc1_bias[h, j] + sum_f x[f] fc1_weight[h, f, j])
// with the exact (erf) GELU, all in float32. Strides are in elements; each K, V and stats row is
// contiguous (stride 1 along dim / stat_width). Weights are dense float32: fc1_weight
// [heads, F, hidden], fc1_bias [heads, hidden], fc2_weight [heads, hidden], fc2_bias [heads];
// scores dense float32 [rows, candidates]; 1 <= hidden <= kScorerMlpMaxHidden.
struct ScorerMlpArgs {
  const void* keys = nullptr;
  const void* values = nullptr;
  ElementType kv_type = ElementType::Float32;
  int64_t key_strides[2] = {0, 0};  // row, candidate
  int64_t value_strides[2] = {0, 0};
  const float* stats = nullptr;
  int64_t stat_strides[2] = {0, 0};
  const float* fc1_weight = nullptr;
  const float* fc1_bias = nullptr;
  const float* fc2_weight = nullptr;
  const float* fc2_bias = nullptr;
  int64_t rows = 0, heads = 0, candidates = 0, dim = 0, stat_width = 0, hidden = 0;
  float* scores = nullptr;
};

// Returns a cudaError_t as int.
int launch_scorer_mlp(const ScorerMlpArgs& args, void* stream);

}  // namespace foresight
