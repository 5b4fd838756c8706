#include "sft/distillation_decider.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "kernels/drop_selection.h"
#include "sft/ranking_loss.h"

namespace foresight {

DistillationDecider::DistillationDecider(LearnedScorer& scorer, FeatureSet features, const GoldenTrace& golden,
                                         int64_t protect, double margin, double weight, bool train)
    : FeatureDecider(features), scorer_(scorer), golden_(golden), protect_(protect), margin_(margin), weight_(weight),
      train_(train) {
  // Rows (step, KV head) with at least one ordered pair, per layer: the layer loss averages them.
  const at::Tensor o = golden.oracle_scores.slice(-1, protect);
  rows_ = (std::get<0>(o.max(-1)) > std::get<0>(o.min(-1))).sum({1, 2}).clamp_min(1).to(at::kDouble);
}

at::Tensor DistillationDecider::decide_view(const StepView& view) {
  const at::Device device = view.features.device();
  if (!drop_slots_.defined()) {  // the trace's oracle on the device once, not a copy per step
    drop_slots_ = golden_.drop_slots.to(device, at::kLong);
    oracle_scores_ = golden_.oracle_scores.to(device);
    loss_ = at::zeros({}, at::TensorOptions().dtype(at::kDouble).device(device));
    overlap_sum_ = at::zeros_like(loss_);
  }
  const at::Tensor drops = drop_slots_[view.layer][view.step];
  const at::Tensor oracle = oracle_scores_[view.layer][view.step];
  c10::AutoGradMode grad(train_);
  const at::Tensor scores = scorer_.forward(view.layer, view.features);
  const RankingLoss l = pairwise_hinge(scores.slice(-1, protect_), oracle.slice(-1, protect_), margin_);
  const at::Tensor part = (l.row_loss * l.has_pairs).sum() * (weight_ / rows_[view.layer].item<double>());
  if (train_) part.backward();
  // Summed on the device in double, as the host sum was, and read once per trace (loss(), overlap_sum()).
  loss_ += part.detach().to(at::kDouble);
  overlap_sum_ += golden_overlap(mask_protected(scores, protect_), drops).sum().to(at::kDouble);
  overlap_rows += scores.size(0);
  return drops;
}

double DistillationDecider::loss() const { return loss_.defined() ? loss_.item<double>() : 0.0; }

double DistillationDecider::overlap_sum() const { return overlap_sum_.defined() ? overlap_sum_.item<double>() : 0.0; }

}  // namespace foresight
