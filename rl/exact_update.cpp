#include "rl/exact_update.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

#include "common/error.h"
#include "policy/scorer.h"
#include "rl/grpo_loss.h"

namespace foresight {

namespace {
constexpr int64_t kParamsPerLayer = 4;  // fc1.weight, fc1.bias, fc2.weight, fc2.bias (LearnedScorer)
}

ExactGradient::ExactGradient(LearnedScorer& policy, int64_t steps, const UpdateOptions& options, double weight)
    : params_(policy.parameters()),
      steps_seen_(static_cast<std::size_t>(policy.spec().base_model.layers), 0),
      kl_(steps_seen_.size()),
      steps_(steps),
      options_(options),
      weight_(weight) {
  if (static_cast<int64_t>(params_.size()) != kParamsPerLayer * static_cast<int64_t>(steps_seen_.size())) {
    throw Error("exact update: the scorer does not have four parameters per layer");
  }
  for (const at::Tensor& p : params_) surrogate_.push_back(at::zeros_like(p));
}

void ExactGradient::step(int64_t layer, const at::Tensor& logp, const RolloutStep& step) {
  const auto l = static_cast<std::size_t>(layer);
  if (++steps_seen_.at(l) > steps_) throw Error("exact update: a layer took more eviction steps than the schedule has");
  // This step's share of the layer's mean, as backprop_kept weighs it.
  const double share = 1.0 / static_cast<double>(steps_) * weight_;
  const at::Tensor old_logp = logp.detach();
  // grpo_terms itself, so that the scaling is the surrogate's: advantage 1 without KL gives the
  // surrogate's gradient per unit advantage; advantage 0 with beta gives the KL term's alone.
  const GrpoTerms surrogate = grpo_terms(logp, old_logp, step.ref_logp, 1.0, options_.epsilon, 0.0);
  std::vector<at::Tensor> layer_params(params_.begin() + kParamsPerLayer * layer,
                                       params_.begin() + kParamsPerLayer * (layer + 1));
  const bool kl_grad = options_.beta != 0;
  const auto grads = torch::autograd::grad({surrogate.loss * share}, layer_params, {}, /*retain_graph=*/kl_grad,
                                           /*create_graph=*/false, /*allow_unused=*/true);
  for (int64_t i = 0; i < kParamsPerLayer; ++i) {
    if (grads[static_cast<std::size_t>(i)].defined()) {
      surrogate_[static_cast<std::size_t>(kParamsPerLayer * layer + i)].add_(grads[static_cast<std::size_t>(i)]);
    }
  }
  const GrpoTerms kl = grpo_terms(logp, old_logp, step.ref_logp, 0.0, options_.epsilon, options_.beta);
  if (kl_grad) (kl.loss * share).backward();
  const at::Tensor kl_share = kl.kl / static_cast<double>(steps_);
  kl_[l] = kl_[l].defined() ? kl_[l] + kl_share : kl_share;
}

UpdateStats ExactGradient::apply(double advantage) {
  UpdateStats stats;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    at::Tensor p = params_[i];
    if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
    p.mutable_grad().add_(surrogate_[i], advantage);
  }
  surrogate_.clear();
  for (std::size_t l = 0; l < steps_seen_.size(); ++l) {
    if (steps_seen_[l] == 0) continue;
    if (steps_seen_[l] != steps_) throw Error("exact update: a layer took fewer eviction steps than the schedule has");
    // At ratio 1 the surrogate's mean is -advantage.
    const double kl = kl_[l].item<double>();
    stats.loss += weight_ * (-advantage + options_.beta * kl);
    stats.kl += kl;
    ++stats.layers;
  }
  return stats;
}

}  // namespace foresight
