#include "rl/rollout.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <unordered_set>

#include "common/error.h"
#include "policy/policy_drops.h"
#include "policy/scorer.h"
#include "rl/grpo_loss.h"

namespace foresight {

at::Tensor eviction_logprobs(const at::Tensor& scores, const SampledDrops& drops, LogprobKind kind) {
  const int64_t b = scores.size(-1);
  const at::Tensor rows = scores.reshape({-1, b});
  auto flat = [&](const at::Tensor& t) { return t.reshape({rows.size(0), -1}); };
  const at::Tensor lp = kind == LogprobKind::PerDrop ? drop_logprobs(rows, flat(drops.slots))
                                                     : plackett_luce_logprobs(rows, flat(drops.pool), flat(drops.order));
  std::vector<int64_t> shape = scores.sizes().vec();
  shape.back() = lp.size(-1);
  return lp.view(shape);
}

namespace {

// A NaN or inf score turns the sampler's softmax into NaN (or an -inf slot is silently never drawn)
// and the log-probabilities into NaN: refused where it appears, by scorer, layer and step.
at::Tensor finite_scores(at::Tensor scores, const char* which, const StepView& view) {
  const int64_t bad = (~at::isfinite(scores)).sum().item<int64_t>();
  if (bad == 0) return scores;
  throw Error("rollout: the " + std::string(which) + " scorer gave " + std::to_string(bad) + " non-finite scores (NaN " +
              "or inf) of " + std::to_string(scores.numel()) + " at layer " + std::to_string(view.layer) +
              ", eviction step " + std::to_string(view.step) + "; its weights or the step's features are not finite");
}

// Samples each step's drops from the policy and records what the update needs.
class SamplingDecider : public FeatureDecider {
 public:
  SamplingDecider(const RolloutOptions& options, LearnedScorer& policy, LearnedScorer& reference, at::Generator gen,
                  RolloutGradient* gradient, Rollout& out)
      : FeatureDecider(options.features), options_(options), policy_(policy), reference_(reference), gen_(std::move(gen)),
        gradient_(gradient), out_(out) {}

  at::Tensor decide_view(const StepView& view) override {
    // With a gradient to take, one forward both samples and differentiates: the drops are drawn
    // from exactly the scores whose log-probabilities are backpropagated (ratio 1 exactly).
    c10::AutoGradMode grad(gradient_ != nullptr);
    const at::Tensor graded = gradient_ ? policy_.forward(view.layer, view.features) : at::Tensor();
    const at::Tensor scores = finite_scores(gradient_ ? graded.detach() : policy_.score(view), "policy", view);
    RolloutStep step{sample_drops(scores, options_.schedule.interval, gen_), {}, {}, {}};
    const at::Tensor logp = eviction_logprobs(gradient_ ? graded : scores, step.drops, options_.logprob);
    step.old_logp = logp.detach();
    step.ref_logp = eviction_logprobs(finite_scores(reference_.score(view), "reference", view), step.drops,
                                      options_.logprob);
    if (options_.keep_features) step.features = view.features;
    if (gradient_) gradient_->step(view.layer, logp, step);
    auto& layer = out_.steps[static_cast<std::size_t>(view.layer)];
    layer.push_back(std::move(step));
    return layer.back().drops.slots;
  }

 private:
  const RolloutOptions& options_;
  LearnedScorer& policy_;
  LearnedScorer& reference_;
  at::Generator gen_;
  RolloutGradient* gradient_;
  Rollout& out_;
};

}  // namespace

Rollout sample_rollout(const Transformer& model, const std::vector<int64_t>& ids, const RolloutOptions& options,
                       LearnedScorer& policy, LearnedScorer& reference, at::Generator gen,
                       RolloutGradient* gradient) {
  Rollout r;
  r.steps.resize(static_cast<std::size_t>(policy.spec().base_model.layers));
  SamplingDecider decider(options, policy, reference, std::move(gen), gradient, r);
  BudgetedRun run = run_budgeted(model, ids, options.schedule, decider);
  r.nll = std::move(run.nll);
  r.drop_slots = std::move(run.drop_slots);
  return r;
}

int64_t kept_feature_bytes(const Rollout& rollout) {
  std::unordered_set<const void*> seen;
  int64_t bytes = 0;
  for (const auto& layer : rollout.steps) {
    for (const RolloutStep& s : layer) {
      if (!s.features.defined()) continue;
      const c10::Storage& storage = s.features.storage();
      if (seen.insert(storage.unsafeGetStorageImpl()).second) bytes += static_cast<int64_t>(storage.nbytes());
    }
  }
  return bytes;
}

}  // namespace foresight
