#include "rl/grpo_loss.h"

#include <ATen/ATen.h>

namespace foresight {

at::Tensor drop_logprobs(const at::Tensor& scores, const at::Tensor& drops) {
  return at::log_softmax(scores.to(at::kFloat), -1).gather(-1, drops);
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
