#pragma once
#include <ATen/core/Tensor.h>

namespace foresight {

// The pairwise hinge of DESIGN.md §5 for rows of candidates: model scores s and oracle scores o,
// both [R, B]. row_loss[r] = mean over pairs (i, j) with o_i > o_j of max(0, margin - (s_i - s_j)),
// computed as [R, B, B] tensors (no loops). Rows without an ordered pair have has_pairs false and
// row_loss 0.
struct RankingLoss {
  at::Tensor row_loss;   // [R]
  at::Tensor has_pairs;  // bool [R]
};
RankingLoss pairwise_hinge(const at::Tensor& scores, const at::Tensor& oracle, double margin);

// |top-W(scores) ∩ drops| / W per row: scores [R, B], drops [R, W] (the oracle's slots).
at::Tensor golden_overlap(const at::Tensor& scores, const at::Tensor& drops);

}  // namespace foresight
