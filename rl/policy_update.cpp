#include "rl/policy_update.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <chrono>

#include "common/error.h"
#include "policy/policy_drops.h"
#include "policy/scorer.h"
#include "rl/grpo_loss.h"

namespace foresight {

UpdateStats& UpdateStats::operator+=(const UpdateStats& o) {
  loss += o.loss;
  kl += o.kl;
  clip += o.clip;
  layers += o.layers;
  scorer_seconds += o.scorer_seconds;
  return *this;
}

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Terms a layer contributes over the whole rollout: the denominator of its mean.
int64_t layer_terms(const std::vector<RolloutStep>& steps) {
  int64_t n = 0;
  for (const RolloutStep& s : steps) n += s.old_logp.numel();
  return n;
}

// Backpropagates the share of a layer's mean that steps [first, first + S) carry, given their
// scores [S, Hkv, B] under the current policy (with grad).
void backprop_steps(const at::Tensor& scores, const std::vector<RolloutStep>& steps, int64_t protect, int64_t first,
                    int64_t terms, double advantage, const UpdateOptions& options, double weight, UpdateStats& stats) {
  const int64_t count = scores.size(0);
  auto stack = [&](auto member) {
    std::vector<at::Tensor> parts;
    for (int64_t s = first; s < first + count; ++s) parts.push_back(member(steps[static_cast<std::size_t>(s)]));
    return at::stack(parts);
  };
  const SampledDrops drops{stack([](const RolloutStep& s) { return s.drops.slots; }),
                           stack([](const RolloutStep& s) { return s.drops.order; }),
                           stack([](const RolloutStep& s) { return s.drops.pool; })};
  const at::Tensor logp = eviction_logprobs(scores, drops, options.logprob, protect);
  const GrpoTerms t = grpo_terms(logp, stack([](const RolloutStep& s) { return s.old_logp; }),
                                 stack([](const RolloutStep& s) { return s.ref_logp; }), advantage, options.epsilon,
                                 options.beta);
  const double share = static_cast<double>(logp.numel()) / static_cast<double>(terms);
  const at::Tensor part = t.loss * (share * weight);
  part.backward();
  stats.loss += part.item<double>();
  stats.kl += t.kl.item<double>() * share;
  stats.clip += t.clip_fraction.item<double>() * share;
}

// Replays the rollout's drops and backpropagates each step's share as the model reaches it, so
// memory stays one step deep however long the trace.
class ReplayDecider : public FeatureDecider {
 public:
  ReplayDecider(LearnedScorer& policy, FeatureSet features, const Rollout& rollout, double advantage,
                const UpdateOptions& options, double weight, UpdateStats& stats)
      : FeatureDecider(features), policy_(policy), rollout_(rollout), advantage_(advantage), options_(options), weight_(weight), stats_(stats) {}

  at::Tensor decide_view(const StepView& view) override {
    const auto& steps = rollout_.steps.at(static_cast<std::size_t>(view.layer));
    if (view.step >= static_cast<int64_t>(steps.size())) throw Error("replay asked for a step the rollout did not take");
    c10::AutoGradMode grad(true);
    const auto t0 = std::chrono::steady_clock::now();
    const at::Tensor scores = policy_.forward(view.layer, view.features).unsqueeze(0);
    backprop_steps(scores, steps, rollout_.protect, view.step, layer_terms(steps), advantage_, options_, weight_, stats_);
    stats_.scorer_seconds += seconds_since(t0);
    return steps[static_cast<std::size_t>(view.step)].drops.slots;
  }

 private:
  LearnedScorer& policy_;
  const Rollout& rollout_;
  double advantage_;
  const UpdateOptions& options_;
  double weight_;
  UpdateStats& stats_;
};

}  // namespace

UpdateStats backprop_kept(LearnedScorer& policy, const Rollout& rollout, double advantage, const UpdateOptions& options,
                          double weight) {
  const auto t0 = std::chrono::steady_clock::now();
  UpdateStats stats;
  for (std::size_t layer = 0; layer < rollout.steps.size(); ++layer) {
    const auto& steps = rollout.steps[layer];
    if (steps.empty()) continue;
    std::vector<at::Tensor> features;
    for (const RolloutStep& s : steps) {
      if (!s.features.defined()) throw Error("the rollout did not keep its features; replay it with the model");
      features.push_back(s.features);
    }
    // One scorer pass per layer over all its steps: [S, Hkv, B, F] -> [Hkv, S * B, F].
    const at::Tensor f = at::stack(features);
    const int64_t n = f.size(0), kv = f.size(1), b = f.size(2);
    const at::Tensor scores = policy.forward(static_cast<int64_t>(layer), f.permute({1, 0, 2, 3}).reshape({kv, n * b, -1}))
                                  .view({kv, n, b})
                                  .permute({1, 0, 2});
    backprop_steps(scores, steps, rollout.protect, 0, layer_terms(steps), advantage, options, weight, stats);
    ++stats.layers;
  }
  stats.scorer_seconds = seconds_since(t0);  // all of it: the kept update runs no model
  return stats;
}

UpdateStats backprop_replayed(const Transformer& model, const std::vector<int64_t>& ids, const RolloutOptions& rollout_options,
                              LearnedScorer& policy, const Rollout& rollout, double advantage,
                              const UpdateOptions& options, double weight) {
  UpdateStats stats;
  ReplayDecider decider(policy, rollout_options.features, rollout, advantage, options, weight, stats);
  run_budgeted(model, ids, rollout_options.schedule, decider);
  for (const auto& steps : rollout.steps) stats.layers += steps.empty() ? 0 : 1;
  return stats;
}

}  // namespace foresight
