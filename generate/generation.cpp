#include "generate/generation.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cache/budgeted_decoder.h"
#include "common/error.h"
#include "common/memory.h"
#include "model/kv_cache.h"
#include "model/transformer.h"
#include "policy/policy_drops.h"

namespace foresight {

namespace {

// splitmix64: independent streams for (seed, prompt, sample, purpose), so that a sample draws the
// same tokens and drops whatever the batch it decodes in.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}
uint64_t stream_seed(uint64_t seed, int64_t prompt, int64_t sample, uint64_t purpose) {
  return mix(mix(mix(mix(seed) ^ static_cast<uint64_t>(prompt)) ^ static_cast<uint64_t>(sample)) ^ purpose);
}
enum : uint64_t { kTokens = 1, kDrops = 2, kRandomPolicy = 3 };

// Each sample's policy and the decider that turns its cache steps into drops.
struct SampleDecider {
  std::unique_ptr<EvictionPolicy> policy;
  std::unique_ptr<PolicyDrops> drops;
};

// Refuses a sample count whose batch cannot fit in the memory left, before any of it is allocated:
// one prompt's samples decode as one batch, so the cache, the activations of the prompt's feed, the
// logits and each sample's generators and policy grow with it (a million samples of a tiny model
// would otherwise grow until the kernel kills the process). A rough upper estimate per sample.
void check_batch_memory(const ModelConfig& c, int64_t samples, int64_t prompt_len, int64_t max_new_tokens,
                        const std::optional<EvictionOptions>& eviction, int64_t element_bytes) {
  const auto available = available_memory_bytes();
  if (!available) return;
  const int64_t slots = eviction ? eviction->schedule.budget + eviction->schedule.interval : prompt_len + max_new_tokens;
  const int64_t fed = eviction ? std::min(prompt_len, eviction->schedule.budget) : prompt_len;  // the widest feed
  const double cache = 2.0 * c.num_layers * c.num_kv_heads * c.head_dim * slots * element_bytes;
  // cum and cum_decay, and the chunk's attention rows, float32 per (KV head, slot, group head).
  const double statistics =
      eviction ? 4.0 * c.num_layers * c.num_heads * slots * (2 + eviction->schedule.interval) : 0.0;
  const double activations = static_cast<double>(fed) * (4 * c.hidden_size + 3 * c.intermediate_size) * element_bytes +
                             4.0 * c.num_heads * fed * slots + 3 * 4.0 * c.vocab_size;
  const double state = 3 * 8192.0;  // the token, drop and policy generators and their decider
  const double per_sample = cache + statistics + activations + state;
  const double needed = per_sample * static_cast<double>(samples);
  if (needed <= static_cast<double>(*available)) return;
  throw Error("--num-samples " + std::to_string(samples) + ": the samples of a prompt decode as one batch, which needs about " +
              human_bytes(needed) + " (" + human_bytes(per_sample) + " per sample: cache, activations, generators), more " +
              "than the " + human_bytes(static_cast<double>(*available)) + " of memory available; at most about " +
              std::to_string(static_cast<int64_t>(static_cast<double>(*available) / per_sample)) + " fit");
}

}  // namespace

void check_generation_options(const ModelConfig& config, const GenerationOptions& options,
                              const std::optional<EvictionOptions>& eviction) {
  if (options.num_samples < 1) {
    throw Error("--num-samples " + std::to_string(options.num_samples) + " is invalid, expected 1 or more");
  }
  if (options.max_new_tokens < 1) {
    throw Error("--max-new-tokens " + std::to_string(options.max_new_tokens) + " is invalid, expected 1 or more");
  }
  check_sampling_options(options.sampling);
  for (const int64_t id : options.stop_ids) {
    if (id < 0 || id >= config.vocab_size) {
      throw Error("stop id " + std::to_string(id) + " lies outside the vocabulary (0.." +
                  std::to_string(config.vocab_size - 1) + ")");
    }
  }
  if (!eviction) return;
  const EvictionSchedule& s = eviction->schedule;
  s.validate();
  const PolicyPreset& preset = find_policy(eviction->policy);
  if (preset.needs_oracle) {
    throw Error("policy " + preset.name + " replays Golden Eviction, which needs the attention of tokens not yet "
                "generated; it cannot evict while generating (use it in the teacher-forced foresight-eval)");
  }
  if (preset.needs_scorer && !eviction->scorer) {
    throw Error("policy " + preset.name + " needs a trained scorer: --scorer DIR");
  }
  const Protect protect = protect_of(*eviction);
  if (!protect.prompt) protect.resolve(s, std::nullopt, "--protect");
}

Protect protect_of(const EvictionOptions& eviction) {
  return eviction.protect.value_or(find_policy(eviction.policy).default_protect);
}

std::vector<int64_t> default_stop_ids(const std::string& model_dir, const ModelConfig& config) {
  const std::filesystem::path path = std::filesystem::path(model_dir) / "generation_config.json";
  if (!std::filesystem::exists(path)) return config.eos_token_ids;
  std::ifstream in(path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw Error(path.string() + " is not valid JSON: " + e.what());
  }
  if (!j.contains("eos_token_id") || j["eos_token_id"].is_null()) return {};
  const nlohmann::json& e = j["eos_token_id"];
  if (e.is_number_integer()) return {e.get<int64_t>()};
  if (e.is_array() && std::all_of(e.begin(), e.end(), [](const nlohmann::json& x) { return x.is_number_integer(); })) {
    return e.get<std::vector<int64_t>>();
  }
  throw Error(path.string() + ": eos_token_id is " + e.dump() + ", expected an integer or a list of integers");
}

void check_prompt_fits(const ModelConfig& config, const std::string& prompt_id, const std::vector<int64_t>& prompt,
                       int64_t max_new_tokens) {
  if (prompt.empty()) throw Error("prompt \"" + prompt_id + "\" is empty");
  for (const int64_t id : prompt) {
    if (id < 0 || id >= config.vocab_size) {
      throw Error("prompt \"" + prompt_id + "\" has token id " + std::to_string(id) + " outside the vocabulary (0.." +
                  std::to_string(config.vocab_size - 1) + ")");
    }
  }
  const auto length = static_cast<int64_t>(prompt.size());
  if (length + max_new_tokens > config.max_position_embeddings) {
    throw Error("prompt \"" + prompt_id + "\" has " + std::to_string(length) + " tokens; with max new tokens " +
                std::to_string(max_new_tokens) + " that is " + std::to_string(length + max_new_tokens) +
                " positions, past the model's max_position_embeddings " +
                std::to_string(config.max_position_embeddings));
  }
}

std::vector<Generation> generate(const Transformer& model, const std::vector<int64_t>& prompt, int64_t prompt_index,
                                 const GenerationOptions& options, const std::optional<EvictionOptions>& eviction) {
  const ModelConfig& c = model.config();
  check_generation_options(c, options, eviction);
  check_prompt_fits(c, std::to_string(prompt_index), prompt, options.max_new_tokens);
  const int64_t n = options.num_samples;
  if (model.options().device().is_cpu()) {
    check_batch_memory(c, n, static_cast<int64_t>(prompt.size()), options.max_new_tokens, eviction,
                       static_cast<int64_t>(model.options().dtype().itemsize()));
  }
  c10::InferenceMode inference;

  std::vector<at::Generator> token_gens;
  for (int64_t k = 0; k < n; ++k) {
    token_gens.push_back(at::make_generator<at::CPUGeneratorImpl>(stream_seed(options.seed, prompt_index, k, kTokens)));
  }

  // The cache: full (a KVCache of prompt + max_new_tokens) or budgeted, one decider per sample.
  std::vector<SampleDecider> deciders;
  std::unique_ptr<BudgetedDecoder> decoder;
  std::unique_ptr<KVCache> full;
  if (eviction) {
    const PolicyPreset& preset = find_policy(eviction->policy);
    const EvictionSchedule schedule = protect_of(*eviction).resolve(
        eviction->schedule, static_cast<int64_t>(prompt.size()), "prompt " + std::to_string(prompt_index));
    std::vector<DropDecider*> raw;
    for (int64_t k = 0; k < n; ++k) {
      PolicyInputs inputs;
      inputs.scorer = eviction->scorer;
      inputs.seed = stream_seed(options.seed, prompt_index, k, kRandomPolicy);
      SampleDecider d{make_policy(preset, inputs), nullptr};
      std::optional<at::Generator> sampler;
      if (preset.sampled) {
        sampler = at::make_generator<at::CPUGeneratorImpl>(stream_seed(options.seed, prompt_index, k, kDrops));
      }
      d.drops = std::make_unique<PolicyDrops>(*d.policy, eviction->features, eviction->schedule.interval, sampler);
      raw.push_back(d.drops.get());
      deciders.push_back(std::move(d));
    }
    decoder = std::make_unique<BudgetedDecoder>(model, schedule, raw, options.record_drops);
  } else {
    const auto capacity = static_cast<int64_t>(prompt.size()) + options.max_new_tokens;
    full = std::make_unique<KVCache>(c, capacity, model.options(), n);
  }
  const auto feed = [&](const at::Tensor& tokens) {  // [n, T] -> last logits [n, vocab]
    const at::Tensor hidden =
        decoder ? decoder->feed(tokens) : model.forward(tokens, full->length(), full->attention());
    return model.logits(hidden.select(1, -1)).to(at::kCPU, at::kFloat);
  };
  const auto cache_state = [&](Generation& g) {
    g.evictions = decoder ? decoder->evictions() : 0;
    g.peak_entries = decoder ? decoder->peak_entries() : full->length();
  };

  std::vector<Generation> out(static_cast<std::size_t>(n));
  std::vector<bool> done(static_cast<std::size_t>(n), false);
  const at::Tensor prompt_ids = at::tensor(at::ArrayRef<int64_t>(prompt), at::kLong);
  at::Tensor logits = feed(prompt_ids.unsqueeze(0).expand({n, -1}));
  for (int64_t produced = 1;; ++produced) {
    std::vector<int64_t> next(static_cast<std::size_t>(n));
    int64_t live = 0;
    for (int64_t k = 0; k < n; ++k) {
      Generation& g = out[static_cast<std::size_t>(k)];
      // A finished sample repeats its last token: the batch advances together, its output is closed.
      const int64_t token = done[k] ? g.new_ids.back() : sample_token(logits[k], options.sampling, token_gens[k]);
      next[static_cast<std::size_t>(k)] = token;
      if (done[k]) continue;
      g.new_ids.push_back(token);
      g.stopped = std::find(options.stop_ids.begin(), options.stop_ids.end(), token) != options.stop_ids.end();
      if (g.stopped || produced == options.max_new_tokens) {
        done[k] = true;
        cache_state(g);
      } else {
        ++live;
      }
    }
    if (live == 0) break;
    logits = feed(at::tensor(at::ArrayRef<int64_t>(next), at::kLong).unsqueeze(1));
  }
  for (const SampleDecider& d : deciders) d.policy->finish();
  if (decoder && options.record_drops) {
    const at::Tensor positions = decoder->drop_positions();  // [n, layers, steps, Hkv, W]
    for (int64_t k = 0; k < n; ++k) {
      Generation& g = out[static_cast<std::size_t>(k)];
      for (int64_t s = 0; s < g.evictions; ++s) g.drop_positions.push_back(positions[k].select(1, s));
    }
  }
  return out;
}

}  // namespace foresight
