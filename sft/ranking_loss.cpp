#include "sft/ranking_loss.h"

#include <ATen/ATen.h>

#include "kernels/drop_selection.h"
#include "policy/drop_overlap.h"

namespace foresight {

RankingLoss pairwise_hinge(const at::Tensor& scores, const at::Tensor& oracle, double margin) {
  const at::Tensor ordered = oracle.unsqueeze(2) > oracle.unsqueeze(1);  // [R, B, B]: o_i > o_j
  const at::Tensor hinge = at::relu(margin - (scores.unsqueeze(2) - scores.unsqueeze(1)));
  const at::Tensor pairs = ordered.sum({1, 2});
  const at::Tensor total = (hinge * ordered).sum({1, 2});
  return {total / pairs.clamp_min(1).to(total.scalar_type()), pairs > 0};
}

at::Tensor golden_overlap(const at::Tensor& scores, const at::Tensor& drops) {
  return drop_overlap(top_w(scores.detach(), drops.size(1)), drops);
}

}  // namespace foresight
