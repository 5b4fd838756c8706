#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "cache/rollout_reward.h"
#include "cache/schedule.h"
#include "model/fingerprint.h"
#include "model/transformer.h"

namespace foresight {

class Config;

// One row of a sweep: a registry policy under one protect value (DESIGN.md §2).
struct PolicyVariant {
  std::string policy;  // registry name
  Protect protect;
  std::string name;    // in tables and folders: NAME at the policy's default protect, else NAME+prompt or NAME+N
};

// A teacher-forced `foresight-eval` config (configs/eval/tiny.yaml), validated in full on parse.
struct EvalConfig {
  std::string model, golden, output_dir;
  std::string scorer;                 // empty: no learned policy
  RuntimeOptions runtime;
  std::vector<std::string> policies;  // registry names (policy/registry.h)
  std::vector<PolicyVariant> variants;  // every policy under every `protect` value
  std::vector<EvictionSchedule> schedules;
  int64_t max_traces = 0;             // 0: every trace in the golden file
  RewardOptions reward;               // threshold and excluded fraction of the spike metrics
  uint64_t seed = 0;
  ModelExpectation expect;
  std::string yaml;
};

EvalConfig parse_eval_config(const Config& config);

// The keys both modes share, validated as they are read:
// `policies`, registry names (default: every policy usable here, the learned ones only with a
// scorer). `decode_time` (generation mode) refuses policies that need the oracle, which has no
// future to see while generating, and the name "full", whose row is always run.
std::vector<std::string> parse_policies(const Config& config, const std::string& scorer, bool decode_time);
// `protect`, one value or a list, each "default" (the policy's own: 4 for streaming_llm, else 0), a
// count or "prompt" (default: [default]): every policy under each, in config order, each variant once.
std::vector<PolicyVariant> parse_variants(const Config& config, const std::vector<std::string>& policies);
// `budgets`, each B (with `interval` as its W) or "B/W"; valid schedules, each listed once.
std::vector<EvictionSchedule> parse_schedules(const Config& config);

}  // namespace foresight
