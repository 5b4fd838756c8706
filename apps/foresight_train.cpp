// foresight-train: the training stages. `sft` distils Golden Eviction into the scorer (DESIGN.md §5);
// `grpo` improves it with rewards from budgeted rollouts (§6).
#include <cstdio>
#include <iostream>

#include "common/cli_options.h"
#include "rl/grpo_config.h"
#include "rl/trainer.h"
#include "sft/sft_config.h"
#include "sft/trainer.h"

using namespace foresight;

namespace {

constexpr const char* kUsage = R"(usage: foresight-train <stage> --config FILE [key=value ...]

stages:
  sft    distil the golden file's oracle into a fresh scorer with a pairwise ranking loss
  grpo   improve an SFT scorer with GRPO over sampled, budgeted rollouts of the golden traces

sft keys (configs/sft/tiny.yaml documents each): model, golden, output_dir, device, dtype,
features, max_steps, batch_size, lr, lr_schedule, warmup_steps, max_grad_norm, margin,
heldout_fraction, eval_every, save_every, keep_last_n, seed, expect_model.*.
grpo keys (configs/grpo/tiny.yaml documents each): model, golden, init_scorer, output_dir,
device, dtype, features, max_steps, per_step_traces, num_generations, rollout_batch,
rollout_budgets, num_iterations, learning_rate, lr_schedule, warmup_steps, max_grad_norm,
epsilon, beta, beta_steps, logprob, exact_update, keep_features, max_abs_score,
reward.{kind,threshold,exclude_fraction,offset,problems,max_new_tokens,stop_ids},
validation.{problems,budgets,max_new_tokens,stop_ids}, save_every, keep_last_n, dist_timeout_s,
seed, expect_model.*.
With validation.problems, grpo measures greedy answer accuracy at step 0 and at every save, and
final/ is the best scorer at least step 0's at every budget (OUT/best meanwhile). A step whose
scorer gives non-finite or saturated scores on a rollout is never saved; the run stops naming
the last good checkpoint.

An output_dir that holds checkpoints is resumed from the latest one, by a run of the same stage
with the same golden file and config (configs/README.md lists the keys a resume may change:
max_steps, eval_every, save_every, keep_last_n, ...); anything else is refused. A run without a
checkpoint to resume starts metrics.jsonl afresh. --check validates the config and exits. grpo scales out over processes with
  torchrun --no-python --nproc_per_node=N foresight-train grpo --config FILE ...
(each rank runs its share of every group; only rank 0 writes).
)";

// A stage: parse and validate its config (--check stops there), then run it.
template <typename StageConfig>
std::function<void(int, char**)> stage(const char* name, StageConfig (*parse)(const Config&),
                                       void (*run)(const StageConfig&)) {
  return [=](int argc, char** argv) {
    cxxopts::Options o(std::string("foresight-train ") + name, kUsage);
    o.add_options()("check", "validate the config and exit (no model or data needed)");
    const ConfigInvocation inv = parse_config_invocation(o, argc, argv);
    const StageConfig config = parse(inv.config);
    if (inv.options.count("check")) {
      std::printf("%s: config ok\n", inv.config.source().c_str());
      return;
    }
    run(config);
  };
}

}  // namespace

int main(int argc, char** argv) { return dispatch(argc, argv, kUsage, {{"sft", stage("sft", parse_sft_config, run_sft)},
                                                         {"grpo", stage("grpo", parse_grpo_config, run_grpo)}}); }
