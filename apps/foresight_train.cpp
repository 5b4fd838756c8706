// foresight-train: the training stages. `sft` distils Golden Eviction into the scorer (DESIGN.md §5).
#include <cstdio>
#include <iostream>

#include "common/cli_options.h"
#include "sft/sft_config.h"
#include "sft/trainer.h"

using namespace foresight;

namespace {

constexpr const char* kUsage = R"(usage: foresight-train <stage> --config FILE [key=value ...]

stages:
  sft   distil the golden file's oracle into a fresh scorer with a pairwise ranking loss

Config keys (configs/sft/tiny.yaml documents each): model, golden, output_dir, device, dtype,
features, max_steps, batch_size, lr, lr_schedule, warmup_steps, max_grad_norm, margin,
heldout_fraction, eval_every, save_every, keep_last_n, seed, expect_model.*.
An output_dir that holds checkpoints is resumed from the latest one. --check validates the
config and exits.
)";

void cmd_sft(int argc, char** argv) {
  cxxopts::Options o("foresight-train sft", kUsage);
  o.add_options()("check", "validate the config and exit (no model or data needed)");
  const ConfigInvocation inv = parse_config_invocation(o, argc, argv);
  const SftConfig config = parse_sft_config(inv.config);
  if (inv.options.count("check")) {
    std::printf("%s: config ok\n", inv.config.source().c_str());
    return;
  }
  run_sft(config);
}

}  // namespace

int main(int argc, char** argv) { return dispatch(argc, argv, kUsage, {{"sft", cmd_sft}}); }
