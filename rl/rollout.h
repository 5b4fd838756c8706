#pragma once
#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <vector>

#include "cache/rollout_reward.h"
#include "cache/schedule.h"
#include "kernels/drop_selection.h"
#include "policy/features.h"

namespace foresight {

class LearnedScorer;
class Transformer;
struct StepView;

// How a rollout's drops are scored (DESIGN.md §6 and the option): per_drop is one
// log_softmax term over all B candidates per dropped slot; plackett_luce is one exact term per
// (step, KV head) for the sampled draws under the top-2W sampler.
enum class LogprobKind { PerDrop, PlackettLuce };

// Log-probabilities of `drops` under `scores` [..., Hkv, B]: [..., Hkv, W] or [..., Hkv, 1]. The first
// `protect` slots are no candidates: the distribution is over the others.
at::Tensor eviction_logprobs(const at::Tensor& scores, const SampledDrops& drops, LogprobKind kind, int64_t protect);

// One eviction step of one layer in a rollout: what was drawn and its log-probabilities under the
// policy that drew it (`old_logp`) and under the frozen reference scorer. `features` (the scorer
// input, [Hkv, B, F]) is kept only when the update should not re-run the model.
struct RolloutStep {
  SampledDrops drops;
  at::Tensor old_logp, ref_logp;
  at::Tensor features;
};

// A budgeted rollout of one trace under sampled drops.
struct Rollout {
  std::vector<std::vector<RolloutStep>> steps;  // [layer][eviction step]
  at::Tensor nll;                               // float32 [L-1], under eviction (teacher-forced rollouts)
  std::vector<int64_t> generated;               // what the model wrote (free-running rollouts)
  at::Tensor drop_slots;                        // int32 [layers, steps, Hkv, W]
  RolloutReward reward;
  int64_t protect = 0;                          // its schedule's protected first slots (never candidates)
};

// Receives each eviction step of a rollout as it is taken: the step's log-probabilities of the draws
// under the policy, with the scorer's graph attached, and the step itself. The exact update
// (rl/exact_update.h) backpropagates here, so the graph lives for one step only.
class RolloutGradient {
 public:
  virtual ~RolloutGradient() = default;
  virtual void step(int64_t layer, const at::Tensor& logp, const RolloutStep& step) = 0;
};

struct RolloutOptions {
  EvictionSchedule schedule;
  FeatureSet features = FeatureSet::Recency;
  LogprobKind logprob = LogprobKind::PerDrop;
  bool keep_features = true;
  // A policy score beyond this magnitude is saturated (see checked_policy_scores in rollout.cpp).
  double max_abs_score = 1e4;
  // The first B + W tokens are the same in every rollout of a trace and come before any eviction:
  // with share_prefix they run once, at batch 1, and the batch branches from there. Off, every
  // rollout runs them itself (what the tests compare the shared way against).
  bool share_prefix = true;
};

// The policy's scores of one step, on the host, refused (an Error naming the layer and step) when
// any is NaN or inf, or when they are saturated: beyond max_abs_score in magnitude (the sampler's
// softmax over the top 2W is one-hot long before, and float32 no longer resolves the small gaps a
// ranking needs), or all equal within a KV head's candidates (the MLP's hidden units are all off,
// so the drops fall to slot order, a sliding window). What an exploded update gives.
at::Tensor checked_policy_scores(at::Tensor host, const StepView& view, double max_abs_score);

// Runs the schedule over `ids` with `policy`'s scores sampled by `gen` (drawn on the CPU, so the
// same seed gives the same rollout on any device). Reward left unset. With a `gradient`, the policy
// scores each step with grad (its unfused forward, on any device) and `gradient` sees every step.
// The batch of one of sample_rollouts.
Rollout sample_rollout(const Transformer& model, const std::vector<int64_t>& ids, const RolloutOptions& options,
                       LearnedScorer& policy, LearnedScorer& reference, at::Generator gen,
                       RolloutGradient* gradient = nullptr);

// Rollouts of one trace as one batch through the model (one budgeted decoder), one per generator:
// rollout g samples its drops with gens[g] and, where gradients[g] is given, reports its steps
// there; each evicts its own slots. Rollout g is sample_rollout with gens[g] and gradients[g], up
// to rounding (a larger matrix product sums in another order). `gradients` is empty or one
// (possibly null) per generator.
std::vector<Rollout> sample_rollouts(const Transformer& model, const std::vector<int64_t>& ids,
                                     const RolloutOptions& options, LearnedScorer& policy, LearnedScorer& reference,
                                     std::vector<at::Generator> gens, std::vector<RolloutGradient*> gradients = {});

// Free-running rollouts of one prompt, what generation sees: the model writes greedily under each
// rollout's sampled drops (gens[g]), as foresight-eval decodes, until a stop id (kept) or
// max_new_tokens. The rollouts share the prompt's first B + W tokens (one pass, then branched) and
// then decode as one batch. Each keeps only the eviction steps taken before it wrote its last
// token, the ones that shaped what it wrote; `generated` is that continuation; nll is unset.
// Teacher-forcing prompt + generated through sample_rollouts with the same generator draws the same
// drops (DESIGN.md §10's invariant, up to rounding).
std::vector<Rollout> sample_free_rollouts(const Transformer& model, const std::vector<int64_t>& prompt,
                                          const RolloutOptions& options, LearnedScorer& policy,
                                          LearnedScorer& reference, std::vector<at::Generator> gens,
                                          int64_t max_new_tokens, const std::vector<int64_t>& stop_ids);

// The bytes the rollout's kept features hold in memory (keep_features): the storages its steps'
// feature tensors keep alive, each counted once, measured rather than computed from the shapes. 0
// when none were kept.
int64_t kept_feature_bytes(const Rollout& rollout);

}  // namespace foresight
