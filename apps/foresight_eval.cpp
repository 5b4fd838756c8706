// foresight-eval: eviction policies x budgets, teacher-forced over a golden file's traces
// (DESIGN.md §7) or by generating answers to problems under each (DESIGN.md §10).
#include <cstdio>
#include <iostream>

#include "common/cli_options.h"
#include "eval/eval_config.h"
#include "eval/generation_config.h"
#include "eval/generation_sweep.h"
#include "eval/sweep.h"
#include "policy/registry.h"

using namespace foresight;

namespace {

std::string usage() {
  std::string text = R"(usage: foresight-eval --config FILE [key=value ...] [--check]

mode: teacher_forced (the default) runs every listed policy at every listed budget over the
traces of a golden file (which carries the full-cache NLL and entropy), each under the eviction
schedule of DESIGN.md §2, and writes output_dir/results.csv, output_dir/results.json and one
folder per policy and budget under output_dir/runs/ (a rerun skips the folders already done).
Prints a Markdown table. Plots: python eval/plot_results.py output_dir.
Config keys (configs/eval/tiny.yaml documents each): mode, model, golden, output_dir, scorer,
device, dtype, policies, budgets, interval, protect, max_traces, reward.threshold,
reward.exclude_fraction, seed, expect_model.*.

mode: generation decodes samples of every problem (JSONL: id, input_ids, answer_ids,
answer_prefix_ids?) with the full cache and with every listed policy at every listed budget
(DESIGN.md §10), checks each final answer against answer_ids and writes the accuracy (pass@1
averaged over samples, with its standard error), mean length, evictions and wall time per cell:
the same files, plus runs/<policy>/<cell>/generations.jsonl. Prints a Markdown table.
Config keys (configs/eval/generation_tiny.yaml documents each): mode, model, problems,
output_dir, scorer, device, dtype, policies, budgets, interval, protect, samples, temperature,
top_p, top_k, max_new_tokens, stop_ids, max_problems, seed, expect_model.*.

protect (both modes): a value or a list, each default (the policy's own: 4 for streaming_llm's
sinks, else 0), a count N or prompt. Every policy runs under each; a variant is named NAME+N or
NAME+prompt, and a cell whose budget cannot hold what it protects (more than B - W) is skipped,
with the reason in results.csv.

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
    // --check: the config parses in full (as a run would parse it first), and nothing runs.
    const auto check_only = [&] {
      if (inv.options.count("check")) std::printf("%s: config ok\n", inv.config.source().c_str());
      return inv.options.count("check") > 0;
    };
    if (inv.config.choice("mode", {"teacher_forced", "generation"}, "teacher_forced") == "generation") {
      const GenerationEvalConfig config = parse_generation_config(inv.config);
      if (!check_only()) run_generation_sweep(config);
    } else {
      const EvalConfig config = parse_eval_config(inv.config);
      if (!check_only()) run_sweep(config);
    }
  });
}
