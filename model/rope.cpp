#include "model/rope.h"

#include <ATen/ATen.h>

#include <cmath>

namespace foresight {

namespace {

// Llama 3.1's frequency rewrite: long wavelengths are slowed by `factor`, short ones kept, and
// the band between them interpolated smoothly.
at::Tensor llama3_scaled(const at::Tensor& inv_freq, const Llama3RopeScaling& s) {
  const double old_len = static_cast<double>(s.original_max_position_embeddings);
  const double low_freq_wavelen = old_len / s.low_freq_factor;
  const double high_freq_wavelen = old_len / s.high_freq_factor;
  const at::Tensor wavelen = 2 * M_PI / inv_freq;
  at::Tensor scaled = at::where(wavelen > low_freq_wavelen, inv_freq / s.factor, inv_freq);
  const at::Tensor smooth =
      (old_len / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
  const at::Tensor smoothed = (1 - smooth) * scaled / s.factor + smooth * scaled;
  const at::Tensor is_medium = (wavelen >= high_freq_wavelen).logical_and(wavelen <= low_freq_wavelen);
  return at::where(is_medium, smoothed, scaled);
}

}  // namespace

RotaryEmbedding::RotaryEmbedding(const ModelConfig& config) {
  const int64_t d = config.head_dim;
  inv_freq_ = 1.0 / at::pow(config.rope_theta, at::arange(0, d, 2, at::kLong).to(at::kFloat) / d);
  if (config.rope_scaling) inv_freq_ = llama3_scaled(inv_freq_, *config.rope_scaling);
}

RotaryEmbedding::Angles RotaryEmbedding::angles(const at::Tensor& positions, at::ScalarType dtype) const {
  const at::Tensor freqs =
      positions.to(at::kFloat).unsqueeze(1) * inv_freq_.to(positions.device()).unsqueeze(0);
  const at::Tensor emb = at::cat({freqs, freqs}, -1).unsqueeze(1);  // [T, 1, d]
  return {emb.cos().to(dtype), emb.sin().to(dtype)};
}

at::Tensor RotaryEmbedding::apply(const at::Tensor& x, const Angles& angles) {
  const int64_t half = x.size(-1) / 2;
  const at::Tensor rotated = at::cat({-x.slice(-1, half), x.slice(-1, 0, half)}, -1);
  return x * angles.cos + rotated * angles.sin;
}

}  // namespace foresight
