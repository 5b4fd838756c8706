#pragma once
#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

#include "cache/schedule.h"
#include "policy/policy.h"

namespace foresight {

class LearnedScorer;

// A named policy with its parameters fixed: what an evaluation config lists.
struct PolicyPreset {
  std::string name;
  std::string description;
  bool needs_scorer = false;  // a trained scorer checkpoint
  bool needs_oracle = false;  // Golden Eviction's scores for the schedule
  bool sampled = false;       // drops drawn from the top 2W instead of the top W
  Protect default_protect;    // the schedule's protect when none is asked for: StreamingLLM's 4 sinks, else 0
};

const std::vector<PolicyPreset>& policy_presets();
// The preset called `name`; an unknown name is an error that lists the known ones.
const PolicyPreset& find_policy(const std::string& name);

// What a policy may need beyond the step itself, given per trace.
struct PolicyInputs {
  LearnedScorer* scorer = nullptr;  // foresight, foresight_sampled
  at::Tensor oracle_scores;         // golden: this trace's, float32 [layers, steps, Hkv, B]
  uint64_t seed = 0;                // random
};

// The policy's name under `protect` in tables and folders: NAME at its default protect, else
// NAME+prompt or NAME+N.
std::string variant_name(const PolicyPreset& preset, const Protect& protect);

// A fresh policy for one trace. The learned scorer is shared, not copied.
std::unique_ptr<EvictionPolicy> make_policy(const PolicyPreset& preset, const PolicyInputs& inputs);

}  // namespace foresight
