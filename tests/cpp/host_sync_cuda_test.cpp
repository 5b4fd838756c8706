// Device-to-host synchronisations per eviction step on the CUDA path, measured: c10's sync-debug
// mode warns at every synchronising CUDA call (a blocking copy either way, .item(), nonzero, a
// stream or device synchronize) and a counting warning handler tallies them. Each path runs at two
// lengths; the difference over the difference in eviction steps is the count per step (all layers),
// free of the per-run costs (weights, the trace's tokens, the NLL read back). Decoding reads every
// token's logits back, so its count per eviction step is taken against the same decoding with a
// budget it never reaches. The bounds are the audited counts (issue 15, item 4); the table is
// printed for scripts/gpu_check.sh's RESULTS.md.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/util/Exception.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <functional>
#include <string>

#include "cache/budgeted_runner.h"
#include "generate/generation.h"
#include "golden/recorder.h"
#include "policy/golden_replay.h"
#include "policy/policy_drops.h"
#include "policy/scorer.h"
#include "rl/exact_update.h"
#include "rl/rollout.h"
#include "sft/distillation_decider.h"
#include "tiny_model.h"

#ifdef FORESIGHT_WITH_CUDA
#include <c10/cuda/CUDAFunctions.h>
#endif

namespace foresight {
namespace {

using test_support::random_ids;
using test_support::tiny_model;

#ifdef FORESIGHT_WITH_CUDA
class SyncCounter : public c10::WarningHandler {
 public:
  void process(const c10::Warning& warning) override {
    if (warning.msg().find("synchroniz") != std::string::npos) ++count;  // "called a synchronizing CUDA operation"
  }
  int64_t count = 0;
};

int64_t syncs_of(const std::function<void()>& work) {
  c10::cuda::device_synchronize();  // nothing earlier is waited for inside
  SyncCounter counter;
  const c10::WarningUtils::WarningHandlerGuard guard(&counter);
  c10::cuda::warning_state().set_sync_debug_mode(c10::cuda::SyncDebugMode::L_WARN);
  try {
    work();
  } catch (...) {
    c10::cuda::warning_state().set_sync_debug_mode(c10::cuda::SyncDebugMode::L_DISABLED);
    throw;
  }
  c10::cuda::warning_state().set_sync_debug_mode(c10::cuda::SyncDebugMode::L_DISABLED);
  return counter.count;
}

constexpr int64_t kLayers = 2;  // tiny_model's
const EvictionSchedule kSchedule{16, 8};
constexpr int64_t kShort = 50, kLong = 98;  // (L - B - 1) / W: 4 and 10 eviction steps

int64_t steps_of(int64_t length) { return kSchedule.steps(length); }

ScorerSpec spec_of(const Transformer& model) {
  const ModelConfig& c = model.config();
  return {{"qwen3", c.num_layers, c.num_heads, c.num_kv_heads, c.head_dim, "test"}, c.group_size(), FeatureSet::Recency,
          kSchedule};
}

struct Measured {
  std::string path;
  double per_step;
  int64_t bound;
};

// Syncs per eviction step of `run(length)`, from the two lengths.
double per_step(const std::function<void(int64_t)>& run) {
  run(kShort);  // warm-up: the first CUDA calls of a process initialise things that may sync once
  const int64_t a = syncs_of([&] { run(kShort); });
  const int64_t b = syncs_of([&] { run(kLong); });
  return static_cast<double>(b - a) / static_cast<double>(steps_of(kLong) - steps_of(kShort));
}

TEST(HostSyncCuda, SyncsPerEvictionStepStayWithinTheAudit) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device on this machine: host syncs are counted on a GPU machine";
  const Transformer cpu_model = tiny_model("host_sync", 4, 2);
  const Transformer model = Transformer::load(
      (std::filesystem::temp_directory_path() / "foresight_tiny_host_sync").string(), {"cuda", at::kFloat});
  ASSERT_EQ(model.config().num_layers, kLayers);
  // The counter sees a read-back at all (sync-debug mode is a process-wide setting of c10_cuda).
  ASSERT_GE(syncs_of([] { at::ones({1}, at::kCUDA).item<float>(); }), 1);
  LearnedScorer policy(spec_of(model), 1), reference(spec_of(model), 2);
  policy.to(at::kCUDA);
  reference.to(at::kCUDA);
  const std::vector<int64_t> long_ids = random_ids(kLong, 7);
  auto ids = [&](int64_t n) { return std::vector<int64_t>(long_ids.begin(), long_ids.begin() + n); };
  const GoldenTrace golden_short = record_golden_trace(cpu_model, ids(kShort), {kSchedule, {}, false});
  const GoldenTrace golden_long = record_golden_trace(cpu_model, ids(kLong), {kSchedule, {}, false});
  auto golden = [&](int64_t n) -> const GoldenTrace& { return n == kShort ? golden_short : golden_long; };

  // Per layer and step, after this change: the policy's scores read back once for the CPU sampler
  // (and its finiteness check), the drawn drops copied to the device once, and compact_entries'
  // slot check (one read-back); everything else stays on the device or is read once per run.
  std::vector<Measured> rows;
  const RolloutOptions sampled{kSchedule, FeatureSet::Recency, LogprobKind::PerDrop, false};
  rows.push_back({"GRPO rollout, sampled drops", per_step([&](int64_t n) {
                    sample_rollout(model, ids(n), sampled, policy, reference, at::make_generator<at::CPUGeneratorImpl>(3));
                  }),
                  3 * kLayers});
  rows.push_back({"GRPO rollout with the exact update", per_step([&](int64_t n) {
                    ExactGradient exact(policy, steps_of(n), {0.2, 0.05, LogprobKind::PerDrop}, 0.25);
                    sample_rollout(model, ids(n), sampled, policy, reference, at::make_generator<at::CPUGeneratorImpl>(3),
                                   &exact);
                  }),
                  3 * kLayers});
  for (at::Tensor p : policy.parameters()) p.mutable_grad() = at::Tensor();
  // Teacher forcing: only the slot check per layer and step.
  rows.push_back({"SFT step (DistillationDecider, training)", per_step([&](int64_t n) {
                    DistillationDecider decider(policy, FeatureSet::Recency, golden(n), 0, 0.1, 1.0, true);
                    run_budgeted(model, ids(n), kSchedule, decider);
                    decider.loss();
                    decider.overlap_sum();
                  }),
                  kLayers});
  for (at::Tensor p : policy.parameters()) p.mutable_grad() = at::Tensor();
  rows.push_back({"teacher-forced oracle drops (ForcedDrops)", per_step([&](int64_t n) {
                    ForcedDrops forced(golden(n).drop_slots);
                    run_budgeted(model, ids(n), kSchedule, forced);
                  }),
                  kLayers});

  // Teacher-forced evaluation of the oracle's scores as a policy (greedy top-W on the device).
  rows.push_back({"teacher-forced eval, golden (GoldenReplay)", per_step([&](int64_t n) {
                    GoldenReplay oracle(golden(n).oracle_scores);
                    PolicyDrops drops(oracle, FeatureSet::Recency, kSchedule.interval);
                    run_budgeted(model, ids(n), kSchedule, drops);
                  }),
                  kLayers});

  // Decoding: greedy, 4-token prompt; per eviction step = (evicting - never evicting) / evictions.
  for (const auto& [policy_name, bound] : std::vector<std::pair<std::string, int64_t>>{
           {"foresight", kLayers}, {"foresight_sampled", 3 * kLayers}, {"h2o", kLayers}}) {
    GenerationOptions options;
    options.max_new_tokens = 90;
    options.sampling.temperature = 0;
    const std::vector<int64_t> prompt = ids(4);
    auto decode = [&](int64_t budget, int64_t* evictions) {
      const EvictionOptions eviction{{budget, kSchedule.interval}, policy_name, &policy, FeatureSet::Recency, std::nullopt};
      const auto out = generate(model, prompt, 0, options, eviction);
      *evictions = out.front().evictions;
    };
    int64_t evictions = 0, none = 0;
    decode(kSchedule.budget, &evictions);  // warm-up
    const int64_t with = syncs_of([&] { decode(kSchedule.budget, &evictions); });
    const int64_t without = syncs_of([&] { decode(128, &none); });
    ASSERT_EQ(none, 0);
    ASSERT_GT(evictions, 0);
    rows.push_back({"decoding, " + policy_name, static_cast<double>(with - without) / static_cast<double>(evictions),
                    bound});
  }

  std::printf("\nhost syncs per eviction step (all %lld layers; tiny qwen3, B %lld, W %lld, float32, cuda)\n",
              static_cast<long long>(kLayers), static_cast<long long>(kSchedule.budget),
              static_cast<long long>(kSchedule.interval));
  std::printf("%-44s %10s %8s\n", "path", "measured", "audit");
  for (const Measured& m : rows) std::printf("%-44s %10.2f %8lld\n", m.path.c_str(), m.per_step, static_cast<long long>(m.bound));
  for (const Measured& m : rows) EXPECT_LE(m.per_step, static_cast<double>(m.bound)) << m.path;
  // Sampling reads every layer's scores back by design (drawn on the CPU, so a seed gives the same
  // rollout on any device): at least that much must be seen.
  EXPECT_GE(rows[0].per_step, static_cast<double>(kLayers));
  EXPECT_GE(rows[1].per_step, static_cast<double>(kLayers));
}
#else
TEST(HostSyncCuda, SyncsPerEvictionStepStayWithinTheAudit) {
  GTEST_SKIP() << "this build has no CUDA kernels: host syncs are counted on a GPU machine (scripts/gpu_check.sh)";
}
#endif

}  // namespace
}  // namespace foresight
