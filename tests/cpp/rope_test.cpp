#include "model/rope.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

namespace foresight {
namespace {

// Llama 3.1's published frequency rule, one frequency at a time in double precision.
double llama3_frequency(double freq, const Llama3RopeScaling& s) {
  const double wavelen = 2 * M_PI / freq;
  const double low_wavelen = s.original_max_position_embeddings / s.low_freq_factor;
  const double high_wavelen = s.original_max_position_embeddings / s.high_freq_factor;
  if (wavelen < high_wavelen) return freq;
  if (wavelen > low_wavelen) return freq / s.factor;
  const double smooth = (s.original_max_position_embeddings / wavelen - s.low_freq_factor) /
                        (s.high_freq_factor - s.low_freq_factor);
  return (1 - smooth) * freq / s.factor + smooth * freq;
}

ModelConfig rope_config() {
  ModelConfig c;
  c.head_dim = 32;
  c.rope_theta = 10000.0;
  return c;
}

TEST(Rope, DefaultFrequenciesAreThetaPowers) {
  const RotaryEmbedding rope(rope_config());
  for (int64_t i = 0; i < 16; ++i) {
    EXPECT_NEAR(rope.inv_freq()[i].item<double>(), std::pow(10000.0, -2.0 * i / 32), 1e-6);
  }
}

TEST(Rope, Llama3ScalingCoversAllThreeBands) {
  ModelConfig c = rope_config();
  c.rope_scaling = Llama3RopeScaling{8.0, 1.0, 4.0, 64};  // bands at wavelengths 16 and 64
  const RotaryEmbedding rope(c);
  int scaled = 0, kept = 0, smoothed = 0;
  for (int64_t i = 0; i < 16; ++i) {
    const double base = std::pow(10000.0, -2.0 * i / 32);
    const double want = llama3_frequency(base, *c.rope_scaling);
    EXPECT_NEAR(rope.inv_freq()[i].item<double>(), want, 1e-6 * want) << "frequency " << i;
    kept += want == base;
    scaled += std::abs(want - base / 8) < 1e-12;
    smoothed += want != base && std::abs(want - base / 8) >= 1e-12;
  }
  EXPECT_GT(kept, 0);
  EXPECT_GT(scaled, 0);
  EXPECT_GT(smoothed, 0);
}

TEST(Rope, RotatesEachPairByPositionTimesFrequency) {
  const RotaryEmbedding rope(rope_config());
  at::manual_seed(3);
  const at::Tensor x = at::randn({5, 2, 32});
  const at::Tensor positions = at::tensor({0, 1, 7, 100, 4095}, at::kLong);
  const at::Tensor got = RotaryEmbedding::apply(x, rope.angles(positions, at::kFloat));
  for (int64_t t = 0; t < 5; ++t) {
    for (int64_t i = 0; i < 16; ++i) {
      // The angle is rounded to float32 as HF rounds it; cos/sin are then exact.
      const double angle = static_cast<float>(positions[t].item<float>() * rope.inv_freq()[i].item<float>());
      const double a = x[t][1][i].item<double>(), b = x[t][1][i + 16].item<double>();
      EXPECT_NEAR(got[t][1][i].item<double>(), a * std::cos(angle) - b * std::sin(angle), 1e-5);
      EXPECT_NEAR(got[t][1][i + 16].item<double>(), b * std::cos(angle) + a * std::sin(angle), 1e-5);
    }
  }
}

}  // namespace
}  // namespace foresight
