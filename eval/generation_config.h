#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cache/schedule.h"
#include "eval/eval_config.h"
#include "model/fingerprint.h"
#include "model/transformer.h"

namespace foresight {

class Config;

// A generation-mode `foresight-eval` config (`mode: generation`, configs/eval/generation_tiny.yaml),
// validated in full on parse: every listed policy decodes every problem at every budget, beside a
// full-cache row, and the answers are checked (generate/answer.h).
struct GenerationEvalConfig {
  std::string model, problems, output_dir;
  std::string scorer;                 // empty: no learned policy
  RuntimeOptions runtime;
  std::vector<std::string> policies;  // registry names that decide at decode time
  std::vector<PolicyVariant> variants;  // every policy under every `protect` value
  std::vector<EvictionSchedule> schedules;
  int64_t samples = 1;                // per problem
  double temperature = 0;             // 0: greedy
  double top_p = 1;
  int64_t top_k = 0;                  // 0: off
  int64_t max_new_tokens = 0;
  std::optional<std::vector<int64_t>> stop_ids;  // absent: the model's (generate/generation.h)
  int64_t max_problems = 0;           // 0: every problem of the file
  uint64_t seed = 0;
  int threads = 0;                    // intra-op threads; 0: the command's default (common/threads.h)
  ModelExpectation expect;
  std::string yaml;
};

GenerationEvalConfig parse_generation_config(const Config& config);

}  // namespace foresight
