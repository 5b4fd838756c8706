#include "policy/drop_selection.h"

#include <ATen/ATen.h>

namespace foresight {

at::Tensor top_w(const at::Tensor& scores, int64_t w) {
  const at::Tensor order = std::get<1>(scores.sort(/*stable=*/true, /*dim=*/-1, /*descending=*/true));
  return std::get<0>(order.slice(-1, 0, w).sort(-1));
}

at::Tensor sample_w(const at::Tensor& scores, int64_t w, at::Generator& gen) {
  const int64_t pool = std::min<int64_t>(2 * w, scores.size(-1));
  const auto [top_scores, top_slots] = scores.detach().to(at::kCPU, at::kFloat).topk(pool, -1);
  const at::Tensor picks = at::multinomial(at::softmax(top_scores, -1), w, /*replacement=*/false, gen);
  return std::get<0>(top_slots.gather(-1, picks).sort(-1)).to(scores.device());
}

}  // namespace foresight
