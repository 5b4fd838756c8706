#include "model/sampling.h"

#include <ATen/ATen.h>

#include <cmath>
#include <limits>
#include <string>

#include "common/error.h"

namespace foresight {

void check_sampling_options(const SamplingOptions& options) {
  if (!(options.temperature >= 0) || !std::isfinite(options.temperature)) {
    throw Error("--temperature " + std::to_string(options.temperature) + " is invalid, expected 0 (greedy) or more");
  }
  if (!(options.top_p > 0 && options.top_p <= 1)) throw Error("--top-p must lie in (0, 1]");
  if (options.top_k < 0) throw Error("--top-k " + std::to_string(options.top_k) + " is invalid, expected 0 (off) or more");
}

int64_t sample_token(const at::Tensor& logits, const SamplingOptions& options, at::Generator& gen) {
  check_sampling_options(options);
  const at::Tensor scores = logits.to(at::kCPU, at::kFloat);
  if (options.temperature == 0) return scores.argmax().item<int64_t>();
  at::Tensor tempered = scores / options.temperature;
  if (options.top_k > 0 && options.top_k < tempered.size(-1)) {
    const at::Tensor kth = std::get<0>(tempered.topk(options.top_k)).select(-1, options.top_k - 1);
    tempered = tempered.masked_fill(tempered < kth, -std::numeric_limits<float>::infinity());
  }
  at::Tensor probs = at::softmax(tempered, -1);
  if (options.top_p < 1.0) {
    const auto [sorted, order] = probs.sort(/*dim=*/-1, /*descending=*/true);
    // A token stays if the mass before it is still short of top_p (the first always stays).
    const at::Tensor keep_sorted = (sorted.cumsum(-1) - sorted) < options.top_p;
    probs = at::zeros_like(probs).scatter_(0, order, sorted * keep_sorted);
  }
  return at::multinomial(probs, 1, /*replacement=*/false, gen).item<int64_t>();
}

}  // namespace foresight
