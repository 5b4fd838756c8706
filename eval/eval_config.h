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

// A `foresight-eval` config (configs/eval/*.yaml), validated in full on parse.
struct EvalConfig {
  std::string model, golden, output_dir;
  std::string scorer;                 // empty: no learned policy
  RuntimeOptions runtime;
  std::vector<std::string> policies;  // registry names (policy/registry.h)
  std::vector<EvictionSchedule> schedules;
  int64_t max_traces = 0;             // 0: every trace in the golden file
  RewardOptions reward;               // threshold and excluded fraction of the spike metrics
  uint64_t seed = 0;
  ModelExpectation expect;
  std::string yaml;
};

EvalConfig parse_eval_config(const Config& config);

}  // namespace foresight
