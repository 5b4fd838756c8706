#pragma once
#include <ATen/core/Tensor.h>

#include "model/config.h"

namespace foresight {

// Rotary position embedding as HF computes it: inverse frequencies in float32 (with llama3
// scaling where configured), cos/sin of position * frequency, rotate-half layout.
class RotaryEmbedding {
 public:
  explicit RotaryEmbedding(const ModelConfig& config);

  const at::Tensor& inv_freq() const { return inv_freq_; }  // float32 [head_dim / 2], CPU

  // Rotates x [T, heads, head_dim] whose rows sit at `positions` [T] (int64).
  at::Tensor apply(const at::Tensor& x, const at::Tensor& positions) const;

 private:
  at::Tensor inv_freq_;
};

}  // namespace foresight
