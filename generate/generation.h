#pragma once
// Generation with or without eviction (DESIGN.md §10): the samples of one prompt decode together,
// as one batch, through the full KV cache or the budgeted decoder (cache/budgeted_decoder.h) under a
// registry policy. What `foresight-model generate` and `foresight-eval` (generation mode) run.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cache/schedule.h"
#include "model/sampling.h"
#include "policy/features.h"
#include "policy/registry.h"

namespace foresight {

class Transformer;
struct ModelConfig;

struct GenerationOptions {
  int64_t max_new_tokens = 0;
  SamplingOptions sampling;         // temperature 0: greedy
  std::vector<int64_t> stop_ids;    // a sample ends on (and keeps) the first of these it draws
  int64_t num_samples = 1;          // decoded together as one batch
  uint64_t seed = 0;                // sample k of prompt p draws from its own generator (seed, p, k)
  bool record_drops = false;        // fill Generation::drop_positions (memory grows with the steps)
};

// Decoding under a budget: the schedule and the policy that picks the drops.
struct EvictionOptions {
  EvictionSchedule schedule;        // schedule.protect is resolved for each prompt from `protect`
  std::string policy;               // a registry name; golden is refused (it needs the future)
  LearnedScorer* scorer = nullptr;  // foresight, foresight_sampled
  FeatureSet features = FeatureSet::Recency;
  std::optional<Protect> protect;   // first positions never dropped; nullopt: the policy's default
};

// One sample of one prompt.
struct Generation {
  std::vector<int64_t> new_ids;  // the continuation, a stop id included when it ended on one
  bool stopped = false;          // ended on a stop id (else it reached max_new_tokens)
  int64_t evictions = 0;         // eviction steps run while it was generating (each drops W per layer and head)
  int64_t peak_entries = 0;      // most entries any layer's cache held per KV head (full cache: its length)
  // With record_drops, per eviction step: int32 [layers, Hkv, W] absolute positions dropped.
  std::vector<at::Tensor> drop_positions;
};

// The protect `eviction` runs with: its own, else its policy's default.
Protect protect_of(const EvictionOptions& eviction);

// Throws, naming the option, unless num_samples >= 1, max_new_tokens >= 1, stop ids lie in the
// vocabulary and the sampling options are valid; and, for eviction, unless the schedule is valid
// and the policy is known and usable at decode time (not golden; a scorer where one is needed), and
// a protected count leaves W entries to evict. A protected prompt is checked by generate().
void check_generation_options(const ModelConfig& config, const GenerationOptions& options,
                              const std::optional<EvictionOptions>& eviction);

// Throws unless the prompt is non-empty, its ids lie in the vocabulary and prompt + max_new_tokens
// fits max_position_embeddings; the message names the prompt and both numbers.
void check_prompt_fits(const ModelConfig& config, const std::string& prompt_id, const std::vector<int64_t>& prompt,
                       int64_t max_new_tokens);

// The stop ids a checkpoint directory asks for: generation_config.json's eos_token_id (a number or
// a list) when that file exists, else config.json's.
std::vector<int64_t> default_stop_ids(const std::string& model_dir, const ModelConfig& config);

// The num_samples continuations of `prompt` (prompt_index seeds its samples' generators and the
// random policy), in sample order. Refuses a protect (the prompt, or a count) above budget - interval.
std::vector<Generation> generate(const Transformer& model, const std::vector<int64_t>& prompt, int64_t prompt_index,
                                 const GenerationOptions& options, const std::optional<EvictionOptions>& eviction);

}  // namespace foresight
