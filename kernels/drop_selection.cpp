#include "kernels/drop_selection.h"

#include <ATen/ATen.h>

#include <limits>

namespace foresight {

at::Tensor mask_protected(const at::Tensor& scores, int64_t protect) {
  if (protect == 0) return scores;
  const at::Tensor slots = at::arange(scores.size(-1), scores.options().dtype(at::kLong));
  return scores.masked_fill(slots < protect, -std::numeric_limits<float>::infinity());
}

at::Tensor top_w(const at::Tensor& scores, int64_t w) {
  const at::Tensor order = std::get<1>(scores.sort(/*stable=*/true, /*dim=*/-1, /*descending=*/true));
  return std::get<0>(order.slice(-1, 0, w).sort(-1));
}

SampledDrops sample_drops(const at::Tensor& scores, int64_t w, at::Generator& gen, std::optional<at::Device> device) {
  const int64_t pool = std::min<int64_t>(2 * w, scores.size(-1));
  // Drawn on the CPU from a CPU generator, so a seed gives the same drops on every device.
  const auto [top_scores, top_slots] = scores.detach().to(at::kCPU, at::kFloat).topk(pool, -1);
  const at::Tensor picks = at::multinomial(at::softmax(top_scores, -1), w, /*replacement=*/false, gen);
  const at::Tensor order = top_slots.gather(-1, picks);
  const at::Tensor sorted = std::get<0>(order.sort(-1));
  const at::Device to = device.value_or(scores.device());
  if (to.is_cpu()) return {sorted, order, top_slots};
  // One copy to the device for the three (each blocking copy waits for the device).
  const at::Tensor all = at::cat({sorted, order, top_slots}, -1).to(to);
  return {all.slice(-1, 0, w), all.slice(-1, w, 2 * w), all.slice(-1, 2 * w)};
}

at::Tensor sample_w(const at::Tensor& scores, int64_t w, at::Generator& gen) {
  return sample_drops(scores, w, gen).slots;
}

}  // namespace foresight
