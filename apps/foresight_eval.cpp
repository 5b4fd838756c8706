// foresight-eval: eviction policies x budgets over a golden file's traces (DESIGN.md §7).
#include <cstdio>
#include <iostream>

#include "common/cli_options.h"
#include "eval/eval_config.h"
#include "eval/sweep.h"
#include "policy/registry.h"

using namespace foresight;

namespace {

std::string usage() {
  std::string text = R"(usage: foresight-eval --config FILE [key=value ...] [--check]

Runs every listed policy at every listed budget over the traces of a golden file (which carries
the full-cache NLL and entropy), each under the eviction schedule of DESIGN.md §2, and writes
output_dir/results.csv, output_dir/results.json and one folder per policy and budget under
output_dir/runs/ (a rerun skips the folders already done). Prints a Markdown table.
Plots: python eval/plot_results.py output_dir.

Config keys (configs/eval/tiny.yaml documents each): model, golden, output_dir, scorer, device,
dtype, policies, budgets, interval, max_traces, reward.threshold, reward.exclude_fraction, seed,
expect_model.*.

Policies:
)";
  for (const PolicyPreset& p : policy_presets()) text += "  " + p.name + std::string(20 - p.name.size(), ' ') + p.description + "\n";
  return text;
}

}  // namespace

int main(int argc, char** argv) {
  return run_command([&] {
    cxxopts::Options o("foresight-eval", usage());
    o.add_options()("check", "validate the config and exit (no model or data needed)");
    const ConfigInvocation inv = parse_config_invocation(o, argc, argv);
    const EvalConfig config = parse_eval_config(inv.config);
    if (inv.options.count("check")) {
      std::printf("%s: config ok\n", inv.config.source().c_str());
      return;
    }
    run_sweep(config);
  });
}
