#pragma once
#include <ATen/core/Tensor.h>

namespace foresight {

// (r - mean) / (population std + 1e-8) within one group of rollouts of the same trace.
at::Tensor group_advantages(const at::Tensor& rewards);

// Policy log-probability of each dropped slot (DESIGN.md §6): log_softmax over all B candidate
// scores [R, B], taken at the drops [R, W]. One term per dropped slot: [R, W].
at::Tensor drop_logprobs(const at::Tensor& scores, const at::Tensor& drops);

// The exact log-probability of one sampled eviction under the top-2W sampler: the Plackett-Luce
// probability of the draws `order` [R, W] (in draw order), each a softmax over the `pool` [R, 2W]
// slots not drawn yet. The pool is the rollout's, so a policy that has since moved other slots
// into its top 2W is still compared on the same draws. One term per row: [R, 1].
at::Tensor plackett_luce_logprobs(const at::Tensor& scores, const at::Tensor& pool, const at::Tensor& order);

struct GrpoTerms {
  at::Tensor loss;  // mean clipped surrogate + beta * mean KL (differentiable)
  at::Tensor kl;    // mean KL estimate (detached)
  at::Tensor clip_fraction;  // share of terms whose ratio left [1 - epsilon, 1 + epsilon] (detached)
};

// Clipped PPO surrogate with a ratio per term (log-ratio clamped to [-10, 10]) and the
// KL(exp(r) - r - 1, r = logp_ref - logp) penalty against the reference (SFT) scorer:
// mean(-min(ratio * A, clip(ratio) * A)) + beta * mean(KL). All log-prob tensors share a shape.
GrpoTerms grpo_terms(const at::Tensor& logp, const at::Tensor& old_logp, const at::Tensor& ref_logp,
                     double advantage, double epsilon, double beta);

}  // namespace foresight
