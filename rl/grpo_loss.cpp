#include "rl/grpo_loss.h"

#include <ATen/ATen.h>

#include <cmath>

namespace foresight {

at::Tensor group_advantages(const at::Tensor& rewards) {
  const at::Tensor r = rewards.to(at::kDouble);
  return (r - r.mean()) / (r.std(/*unbiased=*/false) + 1e-8);
}

at::Tensor drop_logprobs(const at::Tensor& scores, const at::Tensor& drops) {
  return at::log_softmax(scores.to(at::kFloat), -1).gather(-1, drops);
}

at::Tensor plackett_luce_logprobs(const at::Tensor& scores, const at::Tensor& pool, const at::Tensor& order) {
  const at::Tensor s = scores.to(at::kFloat);
  // drawn_before[r, k, p]: pool entry p was drawn before draw k.
  const at::Tensor drawn = pool.unsqueeze(1) == order.unsqueeze(2);  // [R, W, P]
  const at::Tensor drawn_before = (drawn.cumsum(1) - drawn.to(at::kLong)) > 0;
  const at::Tensor remaining = s.gather(-1, pool).unsqueeze(1).expand(drawn.sizes()).masked_fill(drawn_before, -INFINITY);
  return (s.gather(-1, order) - remaining.logsumexp(-1)).sum(-1, /*keepdim=*/true);
}

GrpoTerms grpo_terms(const at::Tensor& logp, const at::Tensor& old_logp, const at::Tensor& ref_logp,
                     double advantage, double epsilon, double beta) {
  const at::Tensor ratio = (logp - old_logp.detach()).clamp(-10, 10).exp();
  const at::Tensor surrogate = -at::minimum(ratio * advantage, ratio.clamp(1 - epsilon, 1 + epsilon) * advantage);
  const at::Tensor r = ref_logp.detach() - logp;
  const at::Tensor kl = r.exp() - r - 1;
  const at::Tensor clipped = (ratio < 1 - epsilon).logical_or(ratio > 1 + epsilon);
  return {surrogate.mean() + beta * kl.mean(), kl.mean().detach(), clipped.to(at::kFloat).mean().detach()};
}

}  // namespace foresight
