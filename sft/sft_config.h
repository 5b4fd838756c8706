#pragma once
#include <cstdint>
#include <string>

#include "model/fingerprint.h"
#include "model/transformer.h"
#include "policy/features.h"

namespace foresight {

class Config;

// A `foresight-train sft` config (configs/sft/*.yaml), validated in full on parse. Defaults are the
// reference hyper-parameters of DESIGN.md §5.
struct SftConfig {
  std::string model, golden, output_dir;
  RuntimeOptions runtime;
  FeatureSet features = FeatureSet::Recency;
  int64_t max_steps = 1000, batch_size = 4, warmup_steps = 10;
  double lr = 1e-2, max_grad_norm = 1.0, margin = 0.01;
  std::string lr_schedule = "cosine";
  double heldout_fraction = 0.1;
  int64_t eval_every = 50, save_every = 100, keep_last_n = 3, dist_timeout_s = 300;
  uint64_t seed = 0;
  ModelExpectation expect;
  std::string yaml;
};

SftConfig parse_sft_config(const Config& config);

}  // namespace foresight
