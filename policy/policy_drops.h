#pragma once
// Deciding drops the way policies see a step: the budgeted runner's raw CacheStep turned into
// the candidates' scorer features (policy/features.h), so that cache/ needs no policy.
#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <optional>

#include "cache/budgeted_runner.h"
#include "policy/features.h"
#include "policy/policy.h"

namespace foresight {

// The step as a policy sees it: features [K | V | 8G statistics] of `set`, positions, attention.
StepView step_view(const CacheStep& step, FeatureSet set);

// A DropDecider that decides on the StepView; subclasses implement decide_view.
class FeatureDecider : public DropDecider {
 public:
  explicit FeatureDecider(FeatureSet features) : features_(features) {}
  at::Tensor decide(const CacheStep& step) final { return decide_view(step_view(step, features_)); }
  virtual at::Tensor decide_view(const StepView& view) = 0;

 private:
  FeatureSet features_;
};

// A policy's choice: greedy top-W, or sampled from the top 2W when a generator is given.
class PolicyDrops : public FeatureDecider {
 public:
  PolicyDrops(EvictionPolicy& policy, FeatureSet features, int64_t interval,
              std::optional<at::Generator> sampler = std::nullopt)
      : FeatureDecider(features), policy_(policy), interval_(interval), sampler_(std::move(sampler)) {}
  at::Tensor decide_view(const StepView& view) override;

 private:
  EvictionPolicy& policy_;
  int64_t interval_;
  std::optional<at::Generator> sampler_;
};

}  // namespace foresight
