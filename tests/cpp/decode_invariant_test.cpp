// One schedule, two drivers (DESIGN.md §10): decoding a batch token by token through the budgeted
// decoder, then teacher-forcing each sequence's tokens through run_budgeted's one-piece feed with a
// fresh copy of the same policy, gives the same drops at every step and the same logits.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include <memory>
#include <optional>

#include "cache/budgeted_decoder.h"
#include "cache/budgeted_runner.h"
#include "generate/generation.h"
#include "policy/policy_drops.h"
#include "policy/registry.h"
#include "policy/scorer.h"
#include "tiny_model.h"

namespace foresight {
namespace {

using test_support::random_ids;
using test_support::tiny_model;

const EvictionSchedule kSchedule{16, 4};

ScorerSpec spec_of(const Transformer& model) {
  const ModelConfig& c = model.config();
  return {{"qwen3", c.num_layers, c.num_heads, c.num_kv_heads, c.head_dim, "test"}, c.group_size(),
          FeatureSet::Recency, kSchedule};
}

// A policy and its decider, made afresh from the same seeds for each driver.
struct Decider {
  std::unique_ptr<EvictionPolicy> policy;
  std::unique_ptr<PolicyDrops> drops;

  Decider(const std::string& name, LearnedScorer* scorer, uint64_t seed) {
    const PolicyPreset& preset = find_policy(name);
    PolicyInputs inputs;
    inputs.scorer = scorer;
    inputs.seed = seed;
    policy = make_policy(preset, inputs);
    std::optional<at::Generator> sampler;
    if (preset.sampled) sampler = at::make_generator<at::CPUGeneratorImpl>(seed + 100);
    drops = std::make_unique<PolicyDrops>(*policy, FeatureSet::Recency, kSchedule.interval, sampler);
  }
};

// Decodes with `name` from a prompt of `prompt_len` tokens under `protect` and checks each sequence
// against teacher forcing.
void expect_invariant(const Transformer& model, LearnedScorer& scorer, const std::string& name, int64_t prompt_len,
                      const Protect& protect) {
  SCOPED_TRACE(name + ", prompt of " + std::to_string(prompt_len) + ", protect " + protect.text());
  const EvictionSchedule schedule = protect.resolve(kSchedule, prompt_len, "prompt");
  const int64_t batch = 2, new_tokens = 45;
  c10::InferenceMode inference;

  // Generate: both sequences share the prompt, then sample their own tokens one at a time.
  std::vector<Decider> decode_deciders;
  for (int64_t n = 0; n < batch; ++n) decode_deciders.emplace_back(name, &scorer, 7 + n);
  BudgetedDecoder decoder(model, schedule, {decode_deciders[0].drops.get(), decode_deciders[1].drops.get()});
  const std::vector<int64_t> prompt = random_ids(prompt_len, 4);
  at::Tensor tokens = at::tensor(prompt, at::kLong).unsqueeze(0).expand({batch, -1}).contiguous();
  std::vector<at::Tensor> logits{model.logits(decoder.feed(tokens))};
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(1);
  for (int64_t i = 0; i < new_tokens; ++i) {
    const at::Tensor probs = at::softmax(logits.back().select(1, -1), -1);
    const at::Tensor next = at::multinomial(probs, 1, false, gen);  // [batch, 1]
    tokens = at::cat({tokens, next}, 1);
    if (i + 1 < new_tokens) logits.push_back(model.logits(decoder.feed(next)));
  }
  const at::Tensor decoded_logits = at::cat(logits, 1);  // [batch, L - 1, vocab]
  const at::Tensor slots = decoder.drop_slots(), positions = decoder.drop_positions();
  EXPECT_GT(slots.size(2), 0) << "the run should evict";
  EXPECT_LE(decoder.peak_entries(), kSchedule.budget + kSchedule.interval);
  EXPECT_GE(positions.min().item<int>(), schedule.protect) << "a protected entry was dropped";

  for (int64_t n = 0; n < batch; ++n) {
    // Teacher forcing: the sequence's tokens but the last (never fed while generating), in one piece.
    Decider forced_decider(name, &scorer, 7 + n);
    const at::Tensor ids = tokens[n].slice(0, 0, -1);
    BudgetedDecoder forced(model, schedule, {forced_decider.drops.get()});
    const at::Tensor forced_logits = model.logits(forced.feed(ids.unsqueeze(0)));
    EXPECT_TRUE(at::equal(forced.drop_slots()[0], slots[n])) << "sequence " << n;
    EXPECT_TRUE(at::equal(forced.drop_positions()[0], positions[n])) << "sequence " << n;
    // Float32 GEMMs over one row or a chunk of rows round differently: within 1e-5 of the logits' scale.
    const double scale = std::max(1.0, decoded_logits[n].abs().max().item<double>());
    EXPECT_LT((forced_logits[0] - decoded_logits[n]).abs().max().item<double>(), 1e-5 * scale)
        << "sequence " << n << ", logits up to " << scale;
    // run_budgeted, the runner the stages use, is the same one-piece feed.
    Decider runner_decider(name, &scorer, 7 + n);
    const std::vector<int64_t> id_list(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + ids.numel());
    EXPECT_TRUE(at::equal(run_budgeted(model, id_list, schedule, *runner_decider.drops).drop_positions, positions[n]));
  }
}

class DecodeInvariant : public ::testing::TestWithParam<std::string> {};

TEST_P(DecodeInvariant, TeacherForcingTheGeneratedTokensReproducesDropsAndLogits) {
  const Transformer model = tiny_model("invariant_" + GetParam(), 4, 2);
  LearnedScorer scorer(spec_of(model), 5);
  // Prompts inside the initial chunk (B 16), across it, and past several chunks.
  for (const int64_t prompt_len : {5, 23, 40}) expect_invariant(model, scorer, GetParam(), prompt_len, Protect{});
  // The prompt protected (up to B - W = 12 tokens), and a count with a prompt past several chunks.
  for (const int64_t prompt_len : {5, 12}) expect_invariant(model, scorer, GetParam(), prompt_len, Protect{0, true});
  expect_invariant(model, scorer, GetParam(), 40, Protect{7, false});
}

INSTANTIATE_TEST_SUITE_P(EveryDecodePolicy, DecodeInvariant,
                         ::testing::Values("streaming_llm", "h2o", "snapkv", "tova", "rkv", "random", "foresight",
                                           "foresight_sampled"));

// generate() decodes the samples of a prompt as one batch; each sample is what it would be alone.
TEST(Generate, SamplesDecodeAsTheyWouldAloneAndKeepTheBudget) {
  const Transformer model = tiny_model("generate", 4, 2);
  const std::vector<int64_t> prompt = random_ids(21, 6);
  GenerationOptions options;
  options.max_new_tokens = 40;
  options.sampling.temperature = 1.0;
  options.num_samples = 3;
  options.seed = 5;
  options.record_drops = true;
  const EvictionOptions eviction{kSchedule, "random"};
  const std::vector<Generation> together = generate(model, prompt, 2, options, eviction);
  ASSERT_EQ(together.size(), 3u);
  EXPECT_NE(together[0].new_ids, together[1].new_ids);
  for (const Generation& g : together) {
    EXPECT_EQ(static_cast<int64_t>(g.new_ids.size()), 40);
    EXPECT_LE(g.peak_entries, kSchedule.budget + kSchedule.interval);
    // 21 + 39 fed tokens: steps run while a token follows a full chunk, (60 - 16 - 1) / 4 of them.
    EXPECT_EQ(g.evictions, kSchedule.steps(21 + 40 - 1));
    EXPECT_EQ(static_cast<int64_t>(g.drop_positions.size()), g.evictions);
  }
  // Sample k alone: the same generator streams, so the same tokens and drops.
  options.num_samples = 1;
  const std::vector<Generation> alone = generate(model, prompt, 2, options, eviction);
  EXPECT_EQ(alone[0].new_ids, together[0].new_ids);
  for (std::size_t s = 0; s < alone[0].drop_positions.size(); ++s) {
    EXPECT_TRUE(at::equal(alone[0].drop_positions[s], together[0].drop_positions[s])) << "step " << s;
  }
}

TEST(Generate, StopsOnAStopIdAndKeepsIt) {
  const Transformer model = tiny_model("stop", 4, 2);
  GenerationOptions options;
  options.max_new_tokens = 30;
  options.sampling.temperature = 0;
  const std::vector<int64_t> prompt = random_ids(9, 8);
  const std::vector<Generation> free_run = generate(model, prompt, 0, options, std::nullopt);
  options.stop_ids = {free_run[0].new_ids[4]};
  const std::vector<Generation> stopped = generate(model, prompt, 0, options, std::nullopt);
  const auto first = std::find(free_run[0].new_ids.begin(), free_run[0].new_ids.end(), options.stop_ids[0]);
  EXPECT_TRUE(stopped[0].stopped);
  EXPECT_EQ(stopped[0].new_ids, std::vector<int64_t>(free_run[0].new_ids.begin(), first + 1));
  EXPECT_EQ(stopped[0].peak_entries, 9 + static_cast<int64_t>(stopped[0].new_ids.size()) - 1);
}

TEST(Generate, RefusesWhatCannotRun) {
  const Transformer model = tiny_model("refuse", 4, 2);
  GenerationOptions options;
  options.max_new_tokens = 4;
  const auto refuses = [&](const std::optional<EvictionOptions>& eviction, const std::string& text) {
    try {
      check_generation_options(model.config(), options, eviction);
      ADD_FAILURE() << "accepted; expected an error with \"" << text << "\"";
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
    }
  };
  refuses(EvictionOptions{{16, 4}, "golden"}, "cannot evict while generating");
  refuses(EvictionOptions{{16, 4}, "foresight"}, "needs a trained scorer");
  refuses(EvictionOptions{{18, 4}, "h2o"}, "multiple of interval");
  refuses(EvictionOptions{{16, 16}, "h2o"}, "must be smaller than budget");
  refuses(EvictionOptions{{16, 4}, "lru"}, "unknown");
  options.num_samples = 0;
  refuses(std::nullopt, "--num-samples 0");
  EXPECT_THROW(check_prompt_fits(model.config(), "p", std::vector<int64_t>(250, 1), 7), std::exception);
}

}  // namespace
}  // namespace foresight
