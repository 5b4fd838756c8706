#pragma once
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
  GoldenOptions options;
  ModelExpectation expect;
  std::string yaml;  // the resolved config, stored in the output
};

GoldenRunConfig parse_golden_config(const Config& config);

// Checks budget/interval as keys of `config`, so the error names them.
void check_schedule(const Config& config, const EvictionSchedule& schedule);

}  // namespace foresight
