#pragma once
#include <ATen/core/Tensor.h>

#include "golden/recorder.h"
#include "policy/policy_drops.h"
#include "policy/scorer.h"

namespace foresight {

// Teacher forcing: the oracle's drops drive the cache while the scorer is scored against the
// oracle's ranking. When training, each step's share of the loss is backpropagated at once, so
// memory stays one step deep however long the trace. `golden` must outlive the decider. The first
// `protect` slots (the schedule's protected entries) are no candidates: they are left out of the
// ranking pairs and of the golden overlap.
class DistillationDecider : public FeatureDecider {
 public:
  DistillationDecider(LearnedScorer& scorer, FeatureSet features, const GoldenTrace& golden, int64_t protect,
                      double margin, double weight, bool train);

  at::Tensor decide_view(const StepView& view) override;

  // The trace's share of the batch loss and its summed golden overlap so far: one read-back each.
  double loss() const;
  double overlap_sum() const;
  int64_t overlap_rows = 0;

 private:
  LearnedScorer& scorer_;
  const GoldenTrace& golden_;
  at::Tensor drop_slots_, oracle_scores_, loss_, overlap_sum_;
  at::Tensor rows_;  // on the host: reading it is no device read-back
  int64_t protect_;
  double margin_, weight_;
  bool train_;
};

}  // namespace foresight
