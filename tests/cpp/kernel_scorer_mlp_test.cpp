// Kernel 4 (scorer_mlp): the op on the CPU and LearnedScorer::forward match a naive loop over the
// documented feature layout; the CUDA kernel equals the CPU reference within the dtype's
// tolerance. The GPU cases skip without a GPU.
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <tuple>

#include "kernels/scorer_mlp_op.h"
#include "policy/features.h"
#include "policy/policy.h"
#include "policy/scorer.h"
#include "kernel_test_support.h"

#ifdef FORESIGHT_WITH_CUDA
#include "kernels/scorer_mlp.cuh"
#endif

namespace foresight {
namespace {

using test_support::tolerance;

// What a step hands the scorer: the candidates' K, V and the chunk's attention and running totals.
struct Step {
  at::Tensor keys, values;            // [R, B, d]
  at::Tensor probs, cum, cum_decay;   // [R, G, T, B], [R, B, G], [R, B, G]

  at::Tensor features(FeatureSet set = FeatureSet::Recency) const {
    return candidate_features(probs, cum, cum_decay, keys, values, set);
  }
  // The 8 statistics [R, B, 8, G], read from the assembled features.
  at::Tensor stats() const {
    const int64_t d = keys.size(2), g = cum.size(2);
    return features().slice(-1, 2 * d).unflatten(-1, {8, g});
  }
};

Step random_step(int64_t rows, int64_t b, int64_t d, int64_t g, at::ScalarType dtype, int64_t t = 20) {
  return {at::randn({rows, b, d}).to(dtype), at::randn({rows, b, d}).to(dtype),
          at::softmax(at::randn({rows, g, t, b}) * 3, -1), at::rand({rows, b, g}) * 4, at::rand({rows, b, g}) * 4};
}

ScorerMlpWeights random_weights(int64_t heads, int64_t features, int64_t hidden) {
  const double a = 1.0 / std::sqrt(static_cast<double>(features)), c = 1.0 / std::sqrt(static_cast<double>(hidden));
  return {at::empty({heads, features, hidden}).uniform_(-a, a), at::empty({heads, hidden}).uniform_(-a, a),
          at::empty({heads, hidden, 1}).uniform_(-c, c), at::empty({heads, 1}).uniform_(-c, c)};
}

ScorerMlpWeights layer_weights(const LearnedScorer& scorer, int64_t layer) {
  const auto p = scorer.named_parameters();
  const auto at_ = [&](int64_t i) { return p[static_cast<std::size_t>(4 * layer + i)].second; };
  return {at_(0), at_(1), at_(2), at_(3)};
}

ScorerSpec small_spec() {
  ScorerSpec spec;
  spec.base_model = {"qwen3", 2, 6, 2, 8, "test"};
  spec.group = 3;
  spec.schedule = {16, 8};
  return spec;
}

// |got - want| <= tol (1 + |want|), largest violation reported.
void expect_close(const at::Tensor& got, const at::Tensor& want, double tol, const std::string& what) {
  ASSERT_EQ(got.sizes(), want.sizes()) << what;
  const at::Tensor excess = (got.cpu().to(at::kDouble) - want.cpu().to(at::kDouble)).abs() -
                            tol * (1 + want.cpu().to(at::kDouble).abs());
  EXPECT_TRUE(got.cpu().isfinite().all().item<bool>()) << what << ": non-finite scores";
  EXPECT_LE(excess.max().item<double>(), 0.0) << what << ": off by more than " << tol;
}


// DESIGN.md §4's scorer written out as loops in double, on the assembled features [R, B, F]:
// row r is scored by KV head r % Hkv, s = sum_k w2[k] GELU(b1[k] + sum_f x[f] w1[f][k]) + b2, with
// GELU(a) = a (1 + erf(a / sqrt 2)) / 2.
at::Tensor naive_scores(const at::Tensor& features, const ScorerMlpWeights& w) {
  const at::Tensor x = features.to(at::kDouble).contiguous(), w1 = w.fc1_weight.to(at::kDouble).contiguous(),
                   b1 = w.fc1_bias.to(at::kDouble).contiguous(), w2 = w.fc2_weight.to(at::kDouble).contiguous(),
                   b2 = w.fc2_bias.to(at::kDouble).contiguous();
  const auto xa = x.accessor<double, 3>();
  const auto w1a = w1.accessor<double, 3>(), w2a = w2.accessor<double, 3>();
  const auto b1a = b1.accessor<double, 2>(), b2a = b2.accessor<double, 2>();
  const int64_t rows = x.size(0), b = x.size(1), f = x.size(2), heads = w1.size(0), hidden = w1.size(2);
  at::Tensor out = at::empty({rows, b}, at::kDouble);
  auto oa = out.accessor<double, 2>();
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t h = r % heads;
    for (int64_t j = 0; j < b; ++j) {
      double s = b2a[h][0];
      for (int64_t k = 0; k < hidden; ++k) {
        double a = b1a[h][k];
        for (int64_t i = 0; i < f; ++i) a += xa[r][j][i] * w1a[h][i][k];
        s += w2a[h][k][0] * 0.5 * a * (1.0 + std::erf(a / std::sqrt(2.0)));
      }
      oa[r][j] = s;
    }
  }
  return out;
}

// --- CPU: the op and LearnedScorer::forward are the scorer's math -----------------------------------

TEST(ScorerMlpCpu, OpAndForwardMatchANaiveLoopOverTheAssembledFeatures) {
  at::manual_seed(1);
  LearnedScorer scorer(small_spec(), 3);
  const c10::NoGradGuard no_grad;
  for (const at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    for (int64_t layer = 0; layer < 2; ++layer) {
      const Step step = random_step(2, 16, 8, 3, dtype);
      // The features by their documented layout: [K | V | the 8 statistics statistic-major].
      const at::Tensor features = at::cat({step.keys.to(at::kFloat), step.values.to(at::kFloat), step.stats().flatten(2)}, -1);
      const at::Tensor want = naive_scores(features, layer_weights(scorer, layer));
      const std::string where = c10::toString(dtype) + std::string(" layer ") + std::to_string(layer);
      // float32 sums of 40 products in another order than the double loop: a few 1e-7.
      expect_close(scorer_mlp(step.keys, step.values, step.stats(), layer_weights(scorer, layer)), want, 1e-5,
                   "op, " + where);
      expect_close(scorer.forward(layer, step.features()), want, 1e-5, "forward, " + where);
      const StepView view{layer, 0, step.features(), at::arange(16).expand({2, 16}), step.probs};
      EXPECT_TRUE(at::equal(scorer.score(view), scorer.forward(layer, step.features()))) << "score() on the CPU is forward()";
    }
  }
}

TEST(ScorerMlpCpu, StackedRolloutsAreScoredByTheirOwnHeads) {
  at::manual_seed(2);
  LearnedScorer scorer(small_spec(), 4);
  const c10::NoGradGuard no_grad;
  const int64_t rollouts = 3, kv = 2, b = 16;
  const Step step = random_step(rollouts * kv, b, 8, 3, at::kFloat);
  const at::Tensor got = scorer_mlp(step.keys, step.values, step.stats(), layer_weights(scorer, 1)).view({rollouts, kv, b});
  const at::Tensor features = step.features().view({rollouts, kv, b, -1});
  for (int64_t r = 0; r < rollouts; ++r) expect_close(got[r], scorer.forward(1, features[r]), 1e-6, "rollout " + std::to_string(r));
}

TEST(ScorerMlpCpu, BadShapesDtypesDevicesAndGradientsAreRefused) {
  at::manual_seed(3);
  const Step step = random_step(4, 10, 8, 2, at::kFloat);
  const at::Tensor stats = step.stats();
  const ScorerMlpWeights w = random_weights(2, 2 * 8 + 8 * 2, 16);
  auto refused = [&](const at::Tensor& k, const at::Tensor& v, const at::Tensor& s, const ScorerMlpWeights& weights,
                     const std::string& why) {
    try {
      scorer_mlp(k, v, s, weights);
      ADD_FAILURE() << "accepted: " << why;
    } catch (const c10::Error& e) {
      EXPECT_NE(std::string(e.what()).find("scorer_mlp"), std::string::npos) << why << ": " << e.what();
    }
  };
  const c10::NoGradGuard no_grad;
  EXPECT_EQ(scorer_mlp(step.keys, step.values, stats, w).sizes(), at::IntArrayRef({4, 10}));
  refused(step.keys[0], step.values[0], stats, w, "2-D keys");
  refused(step.keys, step.values.to(at::kBFloat16), stats, w, "mixed K/V dtypes");
  refused(step.keys.to(at::kDouble), step.values.to(at::kDouble), stats, w, "float64 K/V");
  refused(step.keys, step.values, stats.to(at::kBFloat16), w, "bf16 stats");
  refused(step.keys, step.values, stats.flatten(2), w, "flat stats");
  refused(step.keys, step.values, stats.slice(0, 0, 2), w, "stats of other rows");
  refused(step.keys, step.values, stats, random_weights(2, 2 * 8 + 8 * 3, 16), "F for another G");
  refused(step.keys, step.values, stats, random_weights(3, 2 * 8 + 8 * 2, 16), "4 rows, 3 heads");
  refused(step.keys, step.values, stats, {w.fc1_weight, w.fc1_bias.slice(1, 0, 8), w.fc2_weight, w.fc2_bias},
          "fc1.bias of another width");
  refused(step.keys, step.values, stats, {w.fc1_weight.to(at::kDouble), w.fc1_bias, w.fc2_weight, w.fc2_bias},
          "float64 weights");
  refused(step.keys.to(at::kMeta), step.values.to(at::kMeta), stats.to(at::kMeta), w, "meta tensors");
  {
    const c10::AutoGradMode grad(true);
    refused(step.keys, step.values, stats, {w.fc1_weight.requires_grad_(), w.fc1_bias, w.fc2_weight, w.fc2_bias},
            "weights that want gradients");
  }
}

// --- GPU: the kernel against the reference -------------------------------------------------------

TEST(ScorerMlpGpu, KernelEqualsTheReference) {
  SKIP_WITHOUT_GPU();
  at::manual_seed(4);
  const c10::NoGradGuard no_grad;
  // (rollouts x heads, heads, B, d, G, hidden): tiles cut mid-way, odd widths, stacked rollouts.
  for (const auto& [rows, heads, b, d, g, hidden] :
       {std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t>{1, 1, 1, 1, 1, 1}, {2, 2, 127, 64, 4, 16},
        {8, 8, 1024, 128, 4, 16}, {3 * 8, 8, 1024, 128, 4, 16}, {6, 3, 129, 5, 7, 32}, {4, 4, 1000, 96, 2, 8},
        {2, 1, 300, 128, 16, 17}}) {
    for (const at::ScalarType dtype : {at::kFloat, at::kBFloat16, at::kHalf}) {
      const Step step = random_step(rows, b, d, g, dtype, 8);
      const at::Tensor stats = step.stats();
      const ScorerMlpWeights w = random_weights(heads, 2 * d + 8 * g, hidden);
      const at::Tensor want = scorer_mlp_reference(step.keys, step.values, stats, w);
      const at::Tensor got = scorer_mlp(step.keys.cuda(), step.values.cuda(), stats.cuda(),
                                        {w.fc1_weight.cuda(), w.fc1_bias.cuda(), w.fc2_weight.cuda(), w.fc2_bias.cuda()});
      expect_close(got, want, tolerance(dtype),
                   std::to_string(rows) + "x" + std::to_string(b) + " d " + std::to_string(d) + " G " +
                       std::to_string(g) + " hidden " + std::to_string(hidden) + " " + c10::toString(dtype));
    }
  }
}

// LearnedScorer::score on CUDA features goes through the kernel, on strided slices of the features.
TEST(ScorerMlpGpu, LearnedScorerScoreOnCudaIsForward) {
  SKIP_WITHOUT_GPU();
  at::manual_seed(5);
  LearnedScorer cpu(small_spec(), 6), gpu(small_spec(), 6);
  gpu.to(at::kCUDA);
  const c10::NoGradGuard no_grad;
  const Step step = random_step(2, 200, 8, 3, at::kFloat);
  const at::Tensor features = step.features();
  const StepView view{1, 0, features.cuda(), at::arange(200, at::kCUDA).expand({2, 200}), step.probs.cuda()};
  expect_close(gpu.score(view), cpu.forward(1, features), 1e-5, "score() on CUDA");
}

#ifdef FORESIGHT_WITH_CUDA
// The launcher on a NaN-poisoned output: every score is written.
TEST(ScorerMlpGpu, LauncherWritesEveryScore) {
  SKIP_WITHOUT_GPU();
  at::manual_seed(6);
  const int64_t rows = 6, heads = 3, b = 257, d = 16, g = 2, hidden = 16;
  const Step step = random_step(rows, b, d, g, at::kFloat, 8);
  const at::Tensor stats = step.stats().contiguous();
  const ScorerMlpWeights w = random_weights(heads, 2 * d + 8 * g, hidden);
  const at::Tensor k = step.keys.cuda(), v = step.values.cuda(), s = stats.cuda();
  const at::Tensor w1 = w.fc1_weight.cuda(), b1 = w.fc1_bias.cuda(), w2 = w.fc2_weight.cuda(), b2 = w.fc2_bias.cuda();
  at::Tensor out = at::full({rows, b}, NAN, at::TensorOptions().device(at::kCUDA));
  ScorerMlpArgs a;
  a.keys = k.data_ptr(), a.values = v.data_ptr(), a.kv_type = ElementType::Float32;
  a.key_strides[0] = b * d, a.key_strides[1] = d, a.value_strides[0] = b * d, a.value_strides[1] = d;
  a.stats = s.data_ptr<float>(), a.stat_strides[0] = b * 8 * g, a.stat_strides[1] = 8 * g;
  a.fc1_weight = w1.data_ptr<float>(), a.fc1_bias = b1.data_ptr<float>();
  a.fc2_weight = w2.data_ptr<float>(), a.fc2_bias = b2.data_ptr<float>();
  a.rows = rows, a.heads = heads, a.candidates = b, a.dim = d, a.stat_width = 8 * g, a.hidden = hidden;
  a.scores = out.data_ptr<float>();
  ASSERT_EQ(launch_scorer_mlp(a, nullptr), 0);
  expect_close(out, scorer_mlp_reference(step.keys, step.values, stats, w), 1e-5, "poisoned output");
}
#endif

}  // namespace
}  // namespace foresight
