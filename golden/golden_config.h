#pragma once
#include <cstdint>
#include <string>

#include "golden/recorder.h"
#include "model/fingerprint.h"
#include "model/transformer.h"

namespace foresight {

class Config;

// A `foresight-golden run` config (configs/golden/*.yaml), validated in full on parse.
struct GoldenRunConfig {
  std::string model;   // HF checkpoint directory
  std::string traces;  // trace JSONL
  std::string output;  // golden HDF5 file (created, or resumed)
  RuntimeOptions runtime;
  GoldenOptions options;  // options.schedule.protect is resolved per trace from `protect`
  Protect protect;        // DESIGN.md §2: never-dropped first positions, a count or the prompt
  ModelExpectation expect;
  // Under torchrun: how long a rank waits for the others (the slowest rank's share included)
  // before it fails instead of hanging.
  int64_t dist_timeout_s = 3600;
  // When stderr is not a terminal (a log file): a progress line for the first and last trace and at
  // most one every this many seconds between them; 0, one per trace.
  int64_t progress_every_s = 10;
  std::string yaml;  // the resolved config, stored in the output
};

GoldenRunConfig parse_golden_config(const Config& config);

// Checks budget/interval as keys of `config`, so the error names them.
void check_schedule(const Config& config, const EvictionSchedule& schedule);

// The `protect` key (0 when absent): 0, a count up to budget - interval, or "prompt".
Protect parse_protect(const Config& config, const EvictionSchedule& schedule);

}  // namespace foresight
