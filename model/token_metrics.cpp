#include "model/token_metrics.h"

#include <ATen/ATen.h>

#include "model/transformer.h"

namespace foresight {

TokenMetrics token_metrics(const Transformer& model, const at::Tensor& hidden, const at::Tensor& ids,
                           int64_t chunk) {
  const int64_t n = hidden.size(0) - 1;
  const at::Tensor targets = ids.to(hidden.device(), at::kLong);
  std::vector<at::Tensor> nll, entropy;
  for (int64_t begin = 0; begin < n; begin += chunk) {
    const int64_t end = std::min(n, begin + chunk);
    const at::Tensor logp = at::log_softmax(model.logits(hidden.slice(0, begin, end)).to(at::kFloat), -1);
    nll.push_back(-logp.gather(1, targets.slice(0, begin + 1, end + 1).unsqueeze(1)).squeeze(1));
    entropy.push_back(-(logp.exp() * logp).sum(-1));
  }
  if (n <= 0) {
    const at::Tensor empty = at::empty({0}, at::kFloat);
    return {empty, empty};
  }
  return {at::cat(nll).cpu(), at::cat(entropy).cpu()};
}

}  // namespace foresight
