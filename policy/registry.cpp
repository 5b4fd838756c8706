#include "policy/registry.h"

#include "common/error.h"
#include "policy/golden_replay.h"
#include "policy/h2o.h"
#include "policy/random_policy.h"
#include "policy/rkv.h"
#include "policy/scorer.h"
#include "policy/snapkv.h"
#include "policy/streaming_llm.h"
#include "policy/tova.h"

namespace foresight {

const std::vector<PolicyPreset>& policy_presets() {
  static const std::vector<PolicyPreset> presets = {
      {"streaming_llm", "StreamingLLM: the most recent tokens, and the first 4 (protect 4) as sinks", false, false, false,
       {4, false}},
      {"h2o", "H2O: accumulated attention", false, false, false},
      {"snapkv", "SnapKV: the chunk's last 32 queries, max-pooled with kernel 7", false, false, false},
      {"tova", "TOVA: the newest query's attention", false, false, false},
      {"rkv", "R-KV: 0.1 x attention - 0.9 x key redundancy", false, false, false},
      {"random", "uniformly random drops (seeded)", false, false, false},
      {"golden", "Golden Eviction replayed: the oracle's upper bound", false, true, false},
      {"foresight", "the learned scorer, greedy top-W", true, false, false},
      {"foresight_sampled", "the learned scorer, W drawn from the top 2W as in GRPO rollouts", true, false, true},
  };
  return presets;
}

const PolicyPreset& find_policy(const std::string& name) {
  std::string known;
  for (const PolicyPreset& p : policy_presets()) {
    if (p.name == name) return p;
    known += (known.empty() ? "" : ", ") + p.name;
  }
  throw Error("policy \"" + name + "\" is unknown; known policies: " + known);
}

std::string variant_name(const PolicyPreset& preset, const Protect& protect) {
  return protect == preset.default_protect ? preset.name : preset.name + "+" + protect.text();
}

std::unique_ptr<EvictionPolicy> make_policy(const PolicyPreset& preset, const PolicyInputs& inputs) {
  const std::string& n = preset.name;
  if (preset.needs_scorer && !inputs.scorer) throw Error("policy " + n + " needs a trained scorer (key: scorer)");
  if (preset.needs_oracle && !inputs.oracle_scores.defined()) throw Error("policy " + n + " needs the oracle's scores");
  if (n == "streaming_llm") return std::make_unique<StreamingLlm>();
  if (n == "h2o") return std::make_unique<H2o>();
  if (n == "snapkv") return std::make_unique<SnapKv>(32, 7);
  if (n == "tova") return std::make_unique<Tova>();
  if (n == "rkv") return std::make_unique<Rkv>(0.1);
  if (n == "random") return std::make_unique<RandomPolicy>(inputs.seed);
  if (n == "golden") return std::make_unique<GoldenReplay>(inputs.oracle_scores);
  if (n == "foresight" || n == "foresight_sampled") return std::make_unique<CheckedScorerPolicy>(*inputs.scorer);
  throw Error("policy \"" + n + "\" has no constructor in the registry");
}

}  // namespace foresight
