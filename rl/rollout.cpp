#include "rl/rollout.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <array>
#include <memory>
#include <unordered_set>

#include "cache/budgeted_decoder.h"
#include "common/error.h"
#include "model/sampling.h"
#include "model/token_metrics.h"
#include "model/transformer.h"
#include "policy/policy_drops.h"
#include "policy/scorer.h"
#include "rl/grpo_loss.h"

namespace foresight {

at::Tensor eviction_logprobs(const at::Tensor& scores, const SampledDrops& drops, LogprobKind kind, int64_t protect) {
  const int64_t b = scores.size(-1);
  const at::Tensor rows = mask_protected(scores, protect).reshape({-1, b});
  auto flat = [&](const at::Tensor& t) { return t.reshape({rows.size(0), -1}); };
  const at::Tensor lp = kind == LogprobKind::PerDrop ? drop_logprobs(rows, flat(drops.slots))
                                                     : plackett_luce_logprobs(rows, flat(drops.pool), flat(drops.order));
  std::vector<int64_t> shape = scores.sizes().vec();
  shape.back() = lp.size(-1);
  return lp.view(shape);
}

at::Tensor checked_policy_scores(at::Tensor host, const StepView& view, double max_abs_score) {
  const std::string at_step = " at layer " + std::to_string(view.layer) + ", eviction step " + std::to_string(view.step);
  const int64_t bad = (~at::isfinite(host)).sum().item<int64_t>();
  if (bad > 0) {
    throw Error("rollout: the policy scorer gave " + std::to_string(bad) + " non-finite scores (NaN or inf) of " +
                std::to_string(host.numel()) + at_step + "; its weights or the step's features are not finite");
  }
  const double largest = host.abs().max().item<double>();
  if (largest > max_abs_score) {
    throw Error("rollout: the policy scorer's scores are saturated: |score| reaches " + std::to_string(largest) +
                at_step + ", beyond " + std::to_string(max_abs_score) + " (key max_abs_score)");
  }
  const at::Tensor candidates = host.slice(-1, view.protect);
  if (candidates.size(-1) >= 2 && (candidates.amax(-1) == candidates.amin(-1)).any().item<bool>()) {
    throw Error("rollout: the policy scorer's scores are saturated: one KV head's " +
                std::to_string(candidates.size(-1)) + " candidates all score alike" + at_step +
                " (its hidden units are all off), so its drops would follow slot order");
  }
  return host;
}

namespace {

// A NaN or inf score of the reference scorer turns the log-probabilities into NaN: refused by
// layer and step, as the policy's are.
Error non_finite_reference(int64_t bad, int64_t numel, int64_t layer, int64_t step) {
  return Error("rollout: the reference scorer gave " + std::to_string(bad) + " non-finite scores (NaN or inf) of " +
               std::to_string(numel) + " at layer " + std::to_string(layer) + ", eviction step " +
               std::to_string(step) + "; its weights or the step's features are not finite");
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
    const at::Tensor scores = gradient_ ? graded.detach() : policy_.score(view);
    // The step's one read-back: the drops are drawn on the CPU, and the check reads that copy.
    const at::Tensor host = checked_policy_scores(scores.to(at::kCPU, at::kFloat), view, options_.max_abs_score);
    const int64_t protect = view.protect;
    RolloutStep step{sample_drops(mask_protected(host, protect), options_.schedule.interval, gen_, scores.device()),
                     {}, {}, {}};
    const at::Tensor logp = eviction_logprobs(gradient_ ? graded : scores, step.drops, options_.logprob, protect);
    step.old_logp = logp.detach();
    const at::Tensor reference = reference_.score(view);
    step.ref_logp = eviction_logprobs(reference, step.drops, options_.logprob, protect);
    // Counted on the device and read once the rollout is done (check_reference).
    bad_reference_.push_back((~at::isfinite(reference)).sum());
    reference_at_.push_back({view.layer, view.step, reference.numel()});
    if (options_.keep_features) step.features = view.features;
    if (gradient_) gradient_->step(view.layer, logp, step);
    auto& layer = out_.steps[static_cast<std::size_t>(view.layer)];
    layer.push_back(std::move(step));
    return layer.back().drops.slots;
  }

  // The reference scorer's first step with a non-finite score, refused by layer and step as the
  // policy's are, after the rollout: one read-back for all its steps.
  void check_reference() const {
    if (bad_reference_.empty()) return;
    const at::Tensor bad = at::stack(bad_reference_).to(at::kCPU);
    for (std::size_t i = 0; i < reference_at_.size(); ++i) {
      const auto [layer, step, numel] = reference_at_[i];
      if (const int64_t n = bad[static_cast<int64_t>(i)].item<int64_t>()) throw non_finite_reference(n, numel, layer, step);
    }
  }

 private:
  const RolloutOptions& options_;
  LearnedScorer& policy_;
  LearnedScorer& reference_;
  at::Generator gen_;
  RolloutGradient* gradient_;
  Rollout& out_;
  std::vector<at::Tensor> bad_reference_;             // per step, in the order taken
  std::vector<std::array<int64_t, 3>> reference_at_;  // layer, step, scores
};

// One SamplingDecider per rollout, each recording into its own Rollout (sized for the policy's
// layers, with the schedule's protect); `gradients` is empty or one (possibly null) per generator.
std::vector<std::unique_ptr<SamplingDecider>> sampling_deciders(const RolloutOptions& options, LearnedScorer& policy,
                                                                LearnedScorer& reference,
                                                                std::vector<at::Generator>& gens,
                                                                const std::vector<RolloutGradient*>& gradients,
                                                                std::vector<Rollout>& out) {
  if (gens.empty()) throw Error("rollout: no generator given (one per rollout)");
  if (!gradients.empty() && gradients.size() != gens.size()) {
    throw Error("rollout: " + std::to_string(gradients.size()) + " gradients for " + std::to_string(gens.size()) +
                " rollouts; give one per rollout (null for none) or none at all");
  }
  out.resize(gens.size());
  std::vector<std::unique_ptr<SamplingDecider>> deciders;
  for (std::size_t g = 0; g < out.size(); ++g) {
    out[g].protect = options.schedule.protect;
    out[g].steps.resize(static_cast<std::size_t>(policy.spec().base_model.layers));
    deciders.push_back(std::make_unique<SamplingDecider>(options, policy, reference, std::move(gens[g]),
                                                         gradients.empty() ? nullptr : gradients[g], out[g]));
  }
  return deciders;
}

std::vector<DropDecider*> raw(const std::vector<std::unique_ptr<SamplingDecider>>& owned) {
  std::vector<DropDecider*> out;
  for (const auto& d : owned) out.push_back(d.get());
  return out;
}

}  // namespace

std::vector<Rollout> sample_rollouts(const Transformer& model, const std::vector<int64_t>& ids,
                                     const RolloutOptions& options, LearnedScorer& policy, LearnedScorer& reference,
                                     std::vector<at::Generator> gens, std::vector<RolloutGradient*> gradients) {
  const auto batch = static_cast<int64_t>(gens.size());
  std::vector<Rollout> out;
  const auto owned = sampling_deciders(options, policy, reference, gens, gradients, out);
  const std::vector<DropDecider*> deciders = raw(owned);

  // On the model's device at once, as run_budgeted does: one copy, not one per fed piece.
  const at::Tensor tokens = at::tensor(at::ArrayRef<int64_t>(ids), at::kLong).to(model.options().device());
  const int64_t length = tokens.size(0);
  const EvictionSchedule& s = options.schedule;
  const int64_t shared = options.share_prefix ? std::min(length, s.budget + s.interval) : 0;
  BudgetedDecoder decoder(model, s, shared ? std::vector<DropDecider*>{deciders.front()} : deciders);
  // The shared prefix's NLL is computed once too. Its last hidden state predicts the first token
  // after it, so each rollout's own NLL starts from there.
  at::Tensor prefix_nll, prefix_last;
  if (shared) {
    const at::Tensor hidden = decoder.feed(tokens.slice(0, 0, shared).unsqueeze(0))[0];  // [P, hidden]
    prefix_nll = token_metrics(model, hidden, tokens.slice(0, 0, shared)).nll;
    prefix_last = hidden.slice(0, shared - 1);
    decoder.branch(deciders);
  }
  const at::Tensor rest = shared < length
                              ? decoder.feed(tokens.slice(0, shared).unsqueeze(0).expand({batch, -1}).contiguous())
                              : at::Tensor();  // [N, L - P, hidden]
  for (const auto& decider : owned) decider->check_reference();
  const at::Tensor slots = decoder.drop_slots();
  for (int64_t g = 0; g < batch; ++g) {
    Rollout& r = out[static_cast<std::size_t>(g)];
    if (!shared) {
      r.nll = token_metrics(model, rest[g], tokens).nll;
    } else if (!rest.defined()) {
      r.nll = prefix_nll.clone();
    } else {
      r.nll = at::cat({prefix_nll, token_metrics(model, at::cat({prefix_last, rest[g]}), tokens.slice(0, shared - 1)).nll});
    }
    r.drop_slots = slots[g];
  }
  return out;
}

std::vector<Rollout> sample_free_rollouts(const Transformer& model, const std::vector<int64_t>& prompt,
                                          const RolloutOptions& options, LearnedScorer& policy,
                                          LearnedScorer& reference, std::vector<at::Generator> gens,
                                          int64_t max_new_tokens, const std::vector<int64_t>& stop_ids) {
  if (prompt.empty() || max_new_tokens < 1) {
    throw Error("rollout: a free-running rollout needs a prompt and max_new_tokens >= 1");
  }
  const auto batch = static_cast<int64_t>(gens.size());
  std::vector<Rollout> out;
  const auto owned = sampling_deciders(options, policy, reference, gens, {}, out);
  const std::vector<DropDecider*> deciders = raw(owned);
  const at::Device device = model.options().device();
  const at::Tensor ids = at::tensor(at::ArrayRef<int64_t>(prompt), at::kLong).to(device);
  const EvictionSchedule& s = options.schedule;
  const int64_t length = ids.size(0), shared = std::min(length, s.budget + s.interval);
  BudgetedDecoder decoder(model, s, {deciders.front()});
  at::Tensor hidden = decoder.feed(ids.slice(0, 0, shared).unsqueeze(0));  // [1, P, hidden]
  decoder.branch(deciders);
  hidden = shared < length ? decoder.feed(ids.slice(0, shared).unsqueeze(0).expand({batch, -1}).contiguous())
                           : hidden.expand({batch, -1, -1});
  const SamplingOptions greedy{0.0, 1.0, 0};
  at::Generator unused = at::make_generator<at::CPUGeneratorImpl>(0);  // greedy draws nothing
  std::vector<int64_t> kept_steps(static_cast<std::size_t>(batch), -1);  // eviction steps before its last token
  for (int64_t produced = 1;; ++produced) {
    const at::Tensor logits = model.logits(hidden.select(1, -1)).to(at::kCPU, at::kFloat);  // [N, vocab]
    std::vector<int64_t> next(static_cast<std::size_t>(batch));
    bool live = false;
    for (int64_t g = 0; g < batch; ++g) {
      Rollout& r = out[static_cast<std::size_t>(g)];
      auto& kept = kept_steps[static_cast<std::size_t>(g)];
      // A finished rollout repeats its last token: the batch advances together, its record is closed.
      next[static_cast<std::size_t>(g)] = kept >= 0 ? r.generated.back() : sample_token(logits[g], greedy, unused);
      if (kept >= 0) continue;
      r.generated.push_back(next[static_cast<std::size_t>(g)]);
      const bool stopped = std::find(stop_ids.begin(), stop_ids.end(), r.generated.back()) != stop_ids.end();
      if (stopped || produced == max_new_tokens) {
        kept = decoder.evictions();
      } else {
        live = true;
      }
    }
    if (!live) break;
    hidden = decoder.feed(at::tensor(at::ArrayRef<int64_t>(next), at::kLong).to(device).unsqueeze(1));
  }
  for (const auto& decider : owned) decider->check_reference();
  for (int64_t g = 0; g < batch; ++g) {
    for (auto& layer : out[static_cast<std::size_t>(g)].steps) layer.resize(static_cast<std::size_t>(kept_steps[g]));
  }
  return out;
}

Rollout sample_rollout(const Transformer& model, const std::vector<int64_t>& ids, const RolloutOptions& options,
                       LearnedScorer& policy, LearnedScorer& reference, at::Generator gen,
                       RolloutGradient* gradient) {
  return std::move(sample_rollouts(model, ids, options, policy, reference, {std::move(gen)}, {gradient}).front());
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
