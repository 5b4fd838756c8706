#pragma once
#include <ATen/core/Tensor.h>

namespace foresight {

class Transformer;

// Per-position next-token statistics in float32, on the CPU: for t in [0, T-1),
// nll[t] = -log p(ids[t+1] | ids[<=t]) and entropy[t] = -sum_v p_v log p_v of the prediction at t.
struct TokenMetrics {
  at::Tensor nll;      // [T-1]
  at::Tensor entropy;  // [T-1]
};

// From final hidden states [T, hidden]; logits are formed `chunk` positions at a time so that a
// long trace never holds a [T, vocab] matrix.
TokenMetrics token_metrics(const Transformer& model, const at::Tensor& hidden, const at::Tensor& ids,
                           int64_t chunk = 512);

}  // namespace foresight
