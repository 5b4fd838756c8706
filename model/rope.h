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

  // cos and sin [T, 1, head_dim] of `positions` [T] (int64), computed in float32 and cast to
  // `dtype`; one pair serves every layer and both q and k of a forward.
  struct Angles {
    at::Tensor cos, sin;
  };
  Angles angles(const at::Tensor& positions, at::ScalarType dtype) const;

  // Rotates x [T, heads, head_dim] by the angles of its positions.
  static at::Tensor apply(const at::Tensor& x, const Angles& angles);

 private:
  at::Tensor inv_freq_;
};

}  // namespace foresight
