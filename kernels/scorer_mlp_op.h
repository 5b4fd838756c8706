#pragma once
// Kernel 4's LibTorch layer: the learned scorer's forward (DESIGN.md §4) from the candidates' K, V
// and statistics. CPU tensors run the reference; CUDA tensors run kernels/scorer_mlp.cu, which
// never materialises the [R, B, F] feature tensor. Forward only: gradients go through
// LearnedScorer::forward.
#include <ATen/core/Tensor.h>

namespace foresight {

// One layer's scorer, as LearnedScorer holds it: fc1.weight [Hkv, F, hidden], fc1.bias
// [Hkv, hidden], fc2.weight [Hkv, hidden, 1], fc2.bias [Hkv, 1], float32, F = 2 d + 8 G.
struct ScorerMlpWeights {
  at::Tensor fc1_weight, fc1_bias, fc2_weight, fc2_bias;
};

// Scores float32 [R, B] of keys and values [R, B, d] (bf16/fp16/fp32, one dtype) and stats
// float32 [R, B, 8, G] (policy/features.h's statistics, statistic-major); row r is scored by KV
// head r % Hkv, so R may stack several rollouts' heads. Refused while autograd would want a graph.
at::Tensor scorer_mlp(const at::Tensor& keys, const at::Tensor& values, const at::Tensor& stats,
                      const ScorerMlpWeights& weights);

// The reference, plain LibTorch ops on any device: candidate_features' assembly, then
// LearnedScorer::forward's math (bmm, exact erf GELU, bmm) on each head's rows.
at::Tensor scorer_mlp_reference(const at::Tensor& keys, const at::Tensor& values, const at::Tensor& stats,
                                const ScorerMlpWeights& weights);

}  // namespace foresight
