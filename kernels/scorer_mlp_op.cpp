#include "kernels/scorer_mlp_op.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "kernels/op_support.h"

#ifdef FORESIGHT_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>

#include "kernels/scorer_mlp.cuh"
#endif

namespace foresight {

namespace {

bool is_compute_dtype(at::ScalarType t) { return t == at::kFloat || t == at::kBFloat16 || t == at::kHalf; }

void check_inputs(const at::Tensor& keys, const at::Tensor& values, const at::Tensor& stats, const ScorerMlpWeights& w) {
  const char* op = "scorer_mlp";
  for (const at::Tensor* t : {&keys, &values, &stats, &w.fc1_weight, &w.fc1_bias, &w.fc2_weight, &w.fc2_bias}) {
    TORCH_CHECK(t->defined(), op, ": keys, values, stats and the four weights must all be given");
  }
  TORCH_CHECK(keys.dim() == 3 && keys.size(2) >= 1, op, ": keys must be [R, B, d], got ", keys.sizes());
  const int64_t rows = keys.size(0), candidates = keys.size(1), dim = keys.size(2);
  TORCH_CHECK(values.sizes() == keys.sizes(), op, ": values must have the keys' shape ", keys.sizes(), ", got ",
              values.sizes());
  TORCH_CHECK(is_compute_dtype(keys.scalar_type()) && values.scalar_type() == keys.scalar_type(), op,
              ": keys and values must share one dtype of float32, bfloat16 or float16, got ", keys.scalar_type(), " and ",
              values.scalar_type());
  TORCH_CHECK(stats.dim() == 4 && stats.size(0) == rows && stats.size(1) == candidates && stats.size(2) == 8 &&
                  stats.scalar_type() == at::kFloat,
              op, ": stats must be float32 [R, B, 8, G] = [", rows, ", ", candidates, ", 8, G], got ",
              stats.scalar_type(), " ", stats.sizes());
  const int64_t features = 2 * dim + 8 * stats.size(3);
  TORCH_CHECK(w.fc1_weight.dim() == 3 && w.fc1_weight.size(0) >= 1 && w.fc1_weight.size(1) == features, op,
              ": fc1.weight must be [Hkv, F = 2 d + 8 G = ", features, ", hidden], got ", w.fc1_weight.sizes());
  const int64_t heads = w.fc1_weight.size(0), hidden = w.fc1_weight.size(2);
  TORCH_CHECK(w.fc1_bias.sizes() == at::IntArrayRef({heads, hidden}) &&
                  w.fc2_weight.sizes() == at::IntArrayRef({heads, hidden, 1}) &&
                  w.fc2_bias.sizes() == at::IntArrayRef({heads, 1}),
              op, ": fc1.bias, fc2.weight, fc2.bias must be [", heads, ", ", hidden, "], [", heads, ", ", hidden,
              ", 1], [", heads, ", 1], got ", w.fc1_bias.sizes(), ", ", w.fc2_weight.sizes(), ", ", w.fc2_bias.sizes());
  TORCH_CHECK(rows % heads == 0, op, ": ", rows, " rows are not whole rollouts of ", heads, " KV heads");
  for (const at::Tensor* t : {&w.fc1_weight, &w.fc1_bias, &w.fc2_weight, &w.fc2_bias}) {
    TORCH_CHECK(t->scalar_type() == at::kFloat, op, ": the scorer's weights must be float32, got ", t->scalar_type());
  }
  for (const at::Tensor* t : {&keys, &values, &stats, &w.fc1_weight, &w.fc1_bias, &w.fc2_weight, &w.fc2_bias}) {
    TORCH_CHECK(t->is_cpu() || t->is_cuda(), op, ": tensors must be on the CPU or a CUDA device, got ", t->device());
    TORCH_CHECK(t->device() == keys.device(), op, ": all tensors must be on one device, got ", t->device(), " and ",
                keys.device());
    TORCH_CHECK(!(at::GradMode::is_enabled() && t->requires_grad()), op,
                ": forward only, no gradients; call it under no-grad, or use LearnedScorer::forward to train");
  }
#ifndef FORESIGHT_WITH_CUDA
  TORCH_CHECK(keys.is_cpu(), op, ": this build has no CUDA kernels (nvcc or a CUDA-enabled torch was missing at "
              "configure time); use CPU tensors");
#else
  TORCH_CHECK(keys.is_cpu() || hidden <= kScorerMlpMaxHidden, op, ": the CUDA kernel takes hidden layers up to ",
              kScorerMlpMaxHidden, ", got ", hidden);
#endif
}

#ifdef FORESIGHT_WITH_CUDA
at::Tensor scorer_mlp_cuda(const at::Tensor& keys, const at::Tensor& values, const at::Tensor& stats,
                           const ScorerMlpWeights& w) {
  const c10::cuda::CUDAGuard guard(keys.device());
  // The kernel takes any row and candidate strides but contiguous K, V and statistics rows, which
  // slices of a feature tensor [R, B, F] are; anything else is copied first.
  auto rows_contiguous = [](const at::Tensor& t) { return t.size(2) == 1 || t.stride(2) == 1 ? t : t.contiguous(); };
  const at::Tensor k = rows_contiguous(keys), v = rows_contiguous(values);
  const int64_t group = stats.size(3);
  const at::Tensor s = (group == 1 || stats.stride(3) == 1) && stats.stride(2) == group ? stats : stats.contiguous();
  const at::Tensor fc1_weight = w.fc1_weight.contiguous(), fc1_bias = w.fc1_bias.contiguous();
  const at::Tensor fc2_weight = w.fc2_weight.contiguous(), fc2_bias = w.fc2_bias.contiguous();
  at::Tensor scores = at::empty({keys.size(0), keys.size(1)}, keys.options().dtype(at::kFloat));

  ScorerMlpArgs a;
  a.keys = k.data_ptr();
  a.values = v.data_ptr();
  a.kv_type = element_type(keys.scalar_type());
  a.key_strides[0] = k.stride(0), a.key_strides[1] = k.stride(1);
  a.value_strides[0] = v.stride(0), a.value_strides[1] = v.stride(1);
  a.stats = s.data_ptr<float>();
  a.stat_strides[0] = s.stride(0), a.stat_strides[1] = s.stride(1);
  a.fc1_weight = fc1_weight.data_ptr<float>();
  a.fc1_bias = fc1_bias.data_ptr<float>();
  a.fc2_weight = fc2_weight.data_ptr<float>();
  a.fc2_bias = fc2_bias.data_ptr<float>();
  a.rows = keys.size(0), a.heads = fc1_weight.size(0), a.candidates = keys.size(1);
  a.dim = keys.size(2), a.stat_width = 8 * group, a.hidden = fc1_weight.size(2);
  a.scores = scores.data_ptr<float>();
  const int err = launch_scorer_mlp(a, c10::cuda::getCurrentCUDAStream(keys.device().index()).stream());
  TORCH_CHECK(err == cudaSuccess, "scorer_mlp kernel failed: ", cudaGetErrorString(static_cast<cudaError_t>(err)));
  return scores;
}
#endif

}  // namespace

at::Tensor scorer_mlp_reference(const at::Tensor& keys, const at::Tensor& values, const at::Tensor& stats,
                                const ScorerMlpWeights& w) {
  const int64_t rows = keys.size(0), b = keys.size(1), heads = w.fc1_weight.size(0), rollouts = rows / heads;
  const at::Tensor features = at::cat({keys.to(at::kFloat), values.to(at::kFloat), stats.flatten(2)}, -1);
  // Each head's rows side by side, [Hkv, rollouts B, F]: with one rollout, the features as they are.
  const int64_t f = features.size(2);
  const at::Tensor by_head = features.view({rollouts, heads, b, f}).transpose(0, 1).reshape({heads, rollouts * b, f});
  const at::Tensor h = at::gelu(at::bmm(by_head, w.fc1_weight) + w.fc1_bias.unsqueeze(1));  // exact erf
  const at::Tensor out = (at::bmm(h, w.fc2_weight) + w.fc2_bias.unsqueeze(1)).squeeze(-1);
  return out.view({heads, rollouts, b}).transpose(0, 1).reshape({rows, b});
}

at::Tensor scorer_mlp(const at::Tensor& keys, const at::Tensor& values, const at::Tensor& stats,
                      const ScorerMlpWeights& weights) {
  check_inputs(keys, values, stats, weights);
#ifdef FORESIGHT_WITH_CUDA
  if (keys.is_cuda()) return scorer_mlp_cuda(keys, values, stats, weights);
#endif
  return scorer_mlp_reference(keys, values, stats, weights);
}

}  // namespace foresight
