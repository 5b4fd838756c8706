// foresight-train: the training stages. `sft` distils Golden Eviction into the scorer (DESIGN.md §5).
#include <cstdio>
#include <iostream>

#include "common/cli.h"
#include "common/cli_options.h"
#include "common/config.h"
#include "common/error.h"
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

struct Invocation {
  Config config;
  bool check_only;
};

Invocation parse_invocation(int argc, char** argv, const std::string& stage) {
  cxxopts::Options o("foresight-train " + stage, kUsage);
  o.add_options()("config", "YAML config", cxxopts::value<std::string>())(
      "check", "validate the config and exit (no model or data needed)")(
      "overrides", "key=value overrides", cxxopts::value<std::vector<std::string>>()->default_value(""));
  o.parse_positional({"overrides"});
  o.positional_help("[key=value ...]");
  const auto r = parse_options(o, argc, argv);
  std::vector<std::string> overrides;
  for (const auto& s : r["overrides"].as<std::vector<std::string>>()) {
    if (!s.empty()) overrides.push_back(s);
  }
  return {Config::load(required<std::string>(r, "config"), overrides), r.count("check") > 0};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    std::cout << kUsage;
    return argc < 2 ? 1 : 0;
  }
  const std::string stage = argv[1];
  return run_command([&] {
    if (stage == "sft") {
      const Invocation inv = parse_invocation(argc - 1, argv + 1, "sft");
      const SftConfig config = parse_sft_config(inv.config);
      if (inv.check_only) {
        std::printf("%s: config ok\n", inv.config.source().c_str());
        return;
      }
      return run_sft(config);
    }
    throw Error("unknown stage \"" + stage + "\"\n" + kUsage);
  });
}
