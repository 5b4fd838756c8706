// foresight-model: create, run and measure the frozen language model the stages build on.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "common/cli_options.h"
#include "common/error.h"
#include "common/jsonl_writer.h"
#include "common/output_guard.h"
#include "common/progress.h"
#include "common/safetensors.h"
#include "common/traces.h"
#include "generate/generation.h"
#include "model/checkpoint.h"
#include "model/runtime_config.h"
#include "model/fingerprint.h"
#include "model/kv_cache.h"
#include "model/sampling.h"
#include "model/token_metrics.h"
#include "model/trace_checks.h"
#include "model/transformer.h"
#include "policy/scorer.h"
#include "policy/registry.h"

using namespace foresight;

namespace {

constexpr const char* kUsage = R"(usage: foresight-model <command> [options]

commands:
  init      write a random-weight checkpoint in HF format (config.json + model.safetensors)
  generate  sample continuations of prompts, full cache or evicting under a budget, as trace JSONL
  score     per-position next-token NLL and entropy of traces, full cache, as JSONL
  forward   dump the logits of traces (full forward or incremental decoding) to safetensors
  bench     time the full forward over random tokens; prints one JSON line

Run `foresight-model <command> --help` for a command's options.
)";

void add_runtime_options(cxxopts::Options& o) {
  o.add_options()("model", "HF checkpoint directory", cxxopts::value<std::string>())(
      "device", "cpu, cuda or cuda:N", cxxopts::value<std::string>()->default_value("cpu"))(
      "dtype", "compute dtype: float32, bfloat16, float16",
      cxxopts::value<std::string>()->default_value("float32"));
}

// --device, refused with the flag's name when this machine cannot run it.
std::string checked_device(const cxxopts::ParseResult& r) {
  const std::string device = r["device"].as<std::string>();
  if (const std::string why = device_unavailable(device); !why.empty()) throw Error("--device " + why);
  return device;
}

Transformer load_model(const cxxopts::ParseResult& r) {
  return Transformer::load(required<std::string>(r, "model"), {checked_device(r), parse_dtype(r["dtype"].as<std::string>())});
}

// The traces of `--<traces_key>` and the model, each trace checked against the model before work.
struct TracesAndModel {
  std::vector<Trace> traces;
  Transformer model;
};

TracesAndModel load_traces_and_model(const cxxopts::ParseResult& r, const std::string& traces_key) {
  const std::string path = required<std::string>(r, traces_key);
  std::vector<Trace> traces = read_traces(path);
  if (traces.empty()) throw Error("--" + traces_key + " " + path + " holds no traces: nothing to do");
  TracesAndModel job{std::move(traces), load_model(r)};
  for (const Trace& t : job.traces) check_trace_fits(job.model.config(), t);
  return job;
}

// --out of a command that reads --<inputs_key> and --model: a new file, never one of its inputs.
std::string new_output(const cxxopts::ParseResult& r, const std::string& inputs_key) {
  const std::string out = required<std::string>(r, "out");
  check_new_output({"--out", out}, {{"--" + inputs_key, required<std::string>(r, inputs_key)},
                                    {"--model", required<std::string>(r, "model")}});
  return out;
}

at::Tensor ids_tensor(const std::vector<int64_t>& ids) {
  return at::tensor(at::ArrayRef<int64_t>(ids), at::kLong);
}

int64_t total_tokens(const std::vector<Trace>& traces) {
  int64_t n = 0;
  for (const auto& t : traces) n += static_cast<int64_t>(t.input_ids.size());
  return n;
}

void cmd_init(int argc, char** argv) {
  cxxopts::Options o("foresight-model init", "Write a random-weight HF checkpoint.");
  o.add_options()("arch", "qwen2, qwen3 or llama", cxxopts::value<std::string>())(
      "out", "output directory (must not exist)", cxxopts::value<std::string>())(
      "layers", "decoder layers", cxxopts::value<int64_t>()->default_value("2"))(
      "hidden", "hidden size", cxxopts::value<int64_t>()->default_value("64"))(
      "heads", "query heads", cxxopts::value<int64_t>()->default_value("4"))(
      "kv-heads", "key/value heads (GQA group = heads / kv-heads)", cxxopts::value<int64_t>()->default_value("2"))(
      "head-dim", "head dimension (0: hidden / heads)", cxxopts::value<int64_t>()->default_value("0"))(
      "intermediate", "MLP size", cxxopts::value<int64_t>()->default_value("128"))(
      "vocab", "vocabulary size", cxxopts::value<int64_t>()->default_value("256"))(
      "max-positions", "max_position_embeddings", cxxopts::value<int64_t>()->default_value("4096"))(
      "rope-theta", "RoPE base", cxxopts::value<double>()->default_value("10000"))(
      "rope-scaling", "none or llama3", cxxopts::value<std::string>()->default_value("none"))(
      "rope-factor", "llama3 scaling factor", cxxopts::value<double>()->default_value("8"))(
      "rope-low-freq", "llama3 low_freq_factor", cxxopts::value<double>()->default_value("1"))(
      "rope-high-freq", "llama3 high_freq_factor", cxxopts::value<double>()->default_value("4"))(
      "rope-original-max", "llama3 original_max_position_embeddings",
      cxxopts::value<int64_t>()->default_value("8192"))(
      "tie-embeddings", "share embed_tokens with lm_head", cxxopts::value<bool>()->default_value("false"))(
      "attention-bias", "q/k/v/o biases (llama, qwen3; qwen2 always has q/k/v biases)",
      cxxopts::value<bool>()->default_value("false"))(
      "eos", "eos_token_id (-1: none)", cxxopts::value<int64_t>()->default_value("-1"))(
      "init-std", "std of the random weights", cxxopts::value<double>()->default_value("0.02"))(
      "seed", "random seed", cxxopts::value<uint64_t>()->default_value("0"))(
      "weights-dtype", "stored dtype: float32, bfloat16, float16",
      cxxopts::value<std::string>()->default_value("float32"));
  const auto r = parse_options(o, argc, argv);
  ModelConfig c;
  c.arch = parse_architecture(required<std::string>(r, "arch"));
  c.num_layers = r["layers"].as<int64_t>();
  c.hidden_size = r["hidden"].as<int64_t>();
  c.num_heads = r["heads"].as<int64_t>();
  c.num_kv_heads = r["kv-heads"].as<int64_t>();
  c.head_dim = r["head-dim"].as<int64_t>() > 0 ? r["head-dim"].as<int64_t>() : c.hidden_size / c.num_heads;
  c.intermediate_size = r["intermediate"].as<int64_t>();
  c.vocab_size = r["vocab"].as<int64_t>();
  c.max_position_embeddings = r["max-positions"].as<int64_t>();
  c.rope_theta = r["rope-theta"].as<double>();
  const std::string scaling = r["rope-scaling"].as<std::string>();
  if (scaling == "llama3") {
    c.rope_scaling = Llama3RopeScaling{r["rope-factor"].as<double>(), r["rope-low-freq"].as<double>(),
                                       r["rope-high-freq"].as<double>(),
                                       r["rope-original-max"].as<int64_t>()};
  } else if (scaling != "none") {
    throw Error("--rope-scaling is \"" + scaling + "\", expected none or llama3");
  }
  c.tie_word_embeddings = r["tie-embeddings"].as<bool>();
  const bool bias = r["attention-bias"].as<bool>();
  c.qkv_bias = c.arch == Architecture::Qwen2 || bias;
  c.o_bias = c.arch != Architecture::Qwen2 && bias;
  c.qk_norm = c.arch == Architecture::Qwen3;
  if (r["eos"].as<int64_t>() >= 0) c.eos_token_ids = {r["eos"].as<int64_t>()};
  // Round-trip through config.json text so that init refuses exactly what the loader refuses.
  c = parse_model_config(model_config_to_json(c), "the requested configuration");
  const std::string out = required<std::string>(r, "out");
  write_random_checkpoint(c, out, r["seed"].as<uint64_t>(), r["init-std"].as<double>(),
                          parse_dtype(r["weights-dtype"].as<std::string>()));
  std::fprintf(stderr, "wrote %s (%s, %lld layers, hidden %lld, heads %lld/%lld)\n", out.c_str(),
               architecture_name(c.arch), static_cast<long long>(c.num_layers),
               static_cast<long long>(c.hidden_size), static_cast<long long>(c.num_heads),
               static_cast<long long>(c.num_kv_heads));
}

// "3,7" -> {3, 7}; "none" -> {}. An empty text or an empty item ("", "3,") is refused, not read as
// none: the Python CLI refuses them too, and "no stop ids" must be said (none).
std::vector<int64_t> parse_stop_ids(const std::string& text) {
  if (text == "none") return {};
  std::vector<int64_t> ids;
  for (std::size_t start = 0; start <= text.size();) {
    const std::size_t end = std::min(text.find(',', start), text.size());
    const std::string item = text.substr(start, end - start);
    start = end + 1;
    std::size_t used = 0;
    try {
      ids.push_back(std::stoll(item, &used));
    } catch (const std::logic_error&) {
      used = 0;
    }
    if (used == 0 || used != item.size()) throw Error("--stop-ids has \"" + item + "\", expected ids such as 3,7 or none");
  }
  return ids;
}

void cmd_generate(int argc, char** argv) {
  cxxopts::Options o("foresight-model generate",
                     "Sample continuations of prompt traces, with the full KV cache or, with --policy, a budgeted\n"
                     "cache that evicts on the schedule of DESIGN.md §2 while decoding (§10). The samples of one\n"
                     "prompt decode together as a batch. Each output line is a trace {\"id\", \"input_ids\" (prompt +\n"
                     "continuation), \"prompt_len\", \"sample\", \"evictions\", \"peak_cache_entries\", \"stopped\"}.\n"
                     "The last line on stderr is {\"generated_tokens\", \"seconds\", \"tokens_per_s\"}.");
  add_runtime_options(o);
  o.add_options()("prompts", "prompt traces (JSONL; \"id\" is kept)", cxxopts::value<std::string>())(
      "out", "output traces (JSONL; must not exist)", cxxopts::value<std::string>())(
      "max-new-tokens", "tokens to generate per sample (at most)", cxxopts::value<int64_t>())(
      "num-samples", "continuations per prompt, decoded as one batch", cxxopts::value<int64_t>()->default_value("1"))(
      "temperature", "sampling temperature (0: greedy; negative is an error)", cxxopts::value<double>()->default_value("1.0"))(
      "top-p", "nucleus sampling mass", cxxopts::value<double>()->default_value("1.0"))(
      "top-k", "sample among the k most likely tokens (0: all)", cxxopts::value<int64_t>()->default_value("0"))(
      "stop-ids", "ids that end a sample, e.g. 3,7, or none (default: the checkpoint's eos_token_id)",
      cxxopts::value<std::string>())(
      "seed", "sampling seed", cxxopts::value<uint64_t>()->default_value("0"))(
      "policy", "evict while decoding with this policy: streaming_llm, h2o, snapkv, tova, rkv, random, foresight, "
                "foresight_sampled (default: the full cache)", cxxopts::value<std::string>())(
      "budget", "B: entries kept per layer and KV head (with --policy)", cxxopts::value<int64_t>())(
      "interval", "W: tokens between eviction steps; B must be a multiple of W", cxxopts::value<int64_t>())(
      "scorer", "trained scorer checkpoint (foresight, foresight_sampled)", cxxopts::value<std::string>())(
      "features", "recency or reference: refused unless it is the scorer's (default: the scorer's)",
      cxxopts::value<std::string>())(
      "protect", "first positions never dropped, inside B: a count N or 'prompt' (the whole prompt); at most B - W "
                 "(default: the policy's, 4 for streaming_llm's sinks, else 0)", cxxopts::value<std::string>())(
      "record-drops", "add \"drop_positions\": per eviction step, [layers][KV heads][W] positions dropped")(
      "threads", "intra-op threads (0: the default, OMP_NUM_THREADS or else the physical cores this process may "
                 "run on; 1 is fastest for tiny models, whose decode steps are too small to split)", cxxopts::value<int>()->default_value("0"));
  const auto r = parse_options(o, argc, argv);
  if (r["threads"].as<int>() < 0) throw Error("--threads must be 0 (the default) or more");
  if (r["threads"].as<int>() > 0) at::set_num_threads(r["threads"].as<int>());
  GenerationOptions options;
  options.max_new_tokens = required<int64_t>(r, "max-new-tokens");
  options.num_samples = r["num-samples"].as<int64_t>();
  options.sampling = {r["temperature"].as<double>(), r["top-p"].as<double>(), r["top-k"].as<int64_t>()};
  options.seed = r["seed"].as<uint64_t>();
  options.record_drops = r.count("record-drops") > 0;
  std::optional<EvictionOptions> eviction;
  if (r.count("policy")) {
    eviction = EvictionOptions{{required<int64_t>(r, "budget"), required<int64_t>(r, "interval")},
                               r["policy"].as<std::string>()};
    if (r.count("protect")) eviction->protect = Protect::parse(r["protect"].as<std::string>());
  } else {
    for (const char* key : {"budget", "interval", "scorer", "features", "protect"}) {
      if (r.count(key)) throw Error(std::string("--") + key + " needs --policy (without it the cache is full)");
    }
  }
  const std::string model_dir = required<std::string>(r, "model");
  const Checkpoint checkpoint = load_checkpoint(model_dir);
  const ModelConfig& c = checkpoint.config;
  options.stop_ids = r.count("stop-ids") ? parse_stop_ids(r["stop-ids"].as<std::string>()) : default_stop_ids(model_dir, c);
  std::optional<LearnedScorer> scorer;
  if (eviction && r.count("scorer")) {
    // The scorer runs at this budget whatever it was trained for; its model must be this one.
    ScorerSpec spec = LearnedScorer::read_spec(r["scorer"].as<std::string>());
    spec.base_model = fingerprint(checkpoint);
    if (r.count("features")) spec.features = parse_feature_set(r["features"].as<std::string>());
    scorer.emplace(LearnedScorer::load(r["scorer"].as<std::string>(), spec));
    eviction->scorer = &*scorer;
    eviction->features = scorer->spec().features;
  }
  if (eviction && !find_policy(eviction->policy).needs_scorer) eviction->scorer = nullptr;
  check_generation_options(c, options, eviction);  // before reading prompts or building the model
  const std::vector<Trace> prompts = read_traces(required<std::string>(r, "prompts"));
  if (prompts.empty()) throw Error("--prompts " + required<std::string>(r, "prompts") + " holds no traces: nothing to do");
  for (const Trace& p : prompts) {
    check_prompt_fits(c, p.id, p.input_ids, options.max_new_tokens);
    if (eviction) {  // a protected prompt longer than B - W is refused before any prompt is decoded
      protect_of(*eviction).resolve(eviction->schedule, static_cast<int64_t>(p.input_ids.size()), "prompt \"" + p.id + "\"");
    }
  }
  JsonlWriter out(new_output(r, "prompts"));
  const Transformer model(checkpoint, {checked_device(r), parse_dtype(r["dtype"].as<std::string>())});
  if (scorer) scorer->to(model.options().device());

  ProgressBar bar("generate", static_cast<int64_t>(prompts.size()) * options.num_samples * options.max_new_tokens, "tok");
  const auto t0 = std::chrono::steady_clock::now();
  int64_t generated = 0;
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    const Trace& p = prompts[i];
    const std::vector<Generation> samples = generate(model, p.input_ids, static_cast<int64_t>(i), options, eviction);
    for (std::size_t k = 0; k < samples.size(); ++k) {
      const Generation& g = samples[k];
      Trace t{p.id, p.input_ids, static_cast<int64_t>(p.input_ids.size())};
      t.input_ids.insert(t.input_ids.end(), g.new_ids.begin(), g.new_ids.end());
      nlohmann::json line = nlohmann::json::parse(trace_to_json(t));
      line["sample"] = k;
      line["evictions"] = g.evictions;
      line["peak_cache_entries"] = g.peak_entries;
      line["stopped"] = g.stopped;
      if (r.count("record-drops")) {
        nlohmann::json steps = nlohmann::json::array();
        for (const at::Tensor& d : g.drop_positions) {  // [layers, Hkv, W]
          const at::Tensor flat = d.to(at::kLong).contiguous();
          const std::vector<int64_t> v(flat.data_ptr<int64_t>(), flat.data_ptr<int64_t>() + flat.numel());
          nlohmann::json layers = nlohmann::json::array();
          const int64_t heads = d.size(1), w = d.size(2);
          for (int64_t l = 0; l < d.size(0); ++l) {
            nlohmann::json per_head = nlohmann::json::array();
            for (int64_t h = 0; h < heads; ++h) {
              const auto* row = v.data() + (l * heads + h) * w;
              per_head.push_back(std::vector<int64_t>(row, row + w));
            }
            layers.push_back(per_head);
          }
          steps.push_back(layers);
        }
        line["drop_positions"] = steps;
      }
      out.write(line.dump());
      generated += static_cast<int64_t>(g.new_ids.size());
      bar.advance(options.max_new_tokens);
    }
  }
  bar.finish();
  out.commit();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cerr << nlohmann::json{{"generated_tokens", generated}, {"seconds", seconds},
                              {"tokens_per_s", seconds > 0 ? generated / seconds : 0.0}}.dump()
            << std::endl;
}

void cmd_score(int argc, char** argv) {
  cxxopts::Options o("foresight-model score",
                     "Full-cache next-token NLL and entropy (float32) per position. Each output line is\n"
                     "{\"id\", \"nll\": [...], \"entropy\": [...]} with len(input_ids) - 1 values.");
  add_runtime_options(o);
  o.add_options()("traces", "input traces (JSONL)", cxxopts::value<std::string>())(
      "out", "output JSONL (must not exist)", cxxopts::value<std::string>());
  const auto r = parse_options(o, argc, argv);
  JsonlWriter out(new_output(r, "traces"));
  const auto [traces, model] = load_traces_and_model(r, "traces");
  if (std::all_of(traces.begin(), traces.end(), [](const Trace& t) { return t.input_ids.size() < 2; })) {
    throw Error("every trace of " + required<std::string>(r, "traces") +
                " has fewer than 2 tokens: no position has a next token to score");
  }
  c10::InferenceMode inference;
  ProgressBar bar("score", total_tokens(traces), "tok");
  for (const Trace& t : traces) {
    const at::Tensor ids = ids_tensor(t.input_ids);
    const TokenMetrics m = token_metrics(model, model.forward(ids, 0, no_cache_attention()), ids);
    const auto as_vector = [](const at::Tensor& x) {
      return std::vector<float>(x.data_ptr<float>(), x.data_ptr<float>() + x.numel());
    };
    out.write(nlohmann::json{{"id", t.id}, {"nll", as_vector(m.nll)}, {"entropy", as_vector(m.entropy)}}.dump());
    bar.advance(static_cast<int64_t>(t.input_ids.size()));
  }
  bar.finish();
  out.commit();
}

void cmd_forward(int argc, char** argv) {
  cxxopts::Options o("foresight-model forward",
                     "Write each trace's logits [L, vocab] (float32) to a safetensors file, keyed by id.\n"
                     "--chunk N > 0 decodes incrementally through the KV cache, N tokens per step.");
  add_runtime_options(o);
  o.add_options()("traces", "input traces (JSONL)", cxxopts::value<std::string>())(
      "out", "output .safetensors (must not exist)", cxxopts::value<std::string>())(
      "chunk", "0: one full forward; N: incremental, N tokens at a time",
      cxxopts::value<int64_t>()->default_value("0"));
  const auto r = parse_options(o, argc, argv);
  const int64_t chunk = r["chunk"].as<int64_t>();
  const std::string out = new_output(r, "traces");
  const auto [traces, model] = load_traces_and_model(r, "traces");
  c10::InferenceMode inference;
  std::vector<std::pair<std::string, at::Tensor>> logits;
  for (const Trace& t : traces) {
    const at::Tensor ids = ids_tensor(t.input_ids);
    at::Tensor hidden;
    if (chunk <= 0) {
      hidden = model.forward(ids, 0, no_cache_attention());
    } else {
      KVCache cache(model.config(), ids.size(0), model.options());
      std::vector<at::Tensor> parts;
      for (int64_t s = 0; s < ids.size(0); s += chunk) {
        parts.push_back(model.forward(ids.slice(0, s, s + chunk), s, cache.attention()));
      }
      hidden = at::cat(parts);
    }
    logits.emplace_back(t.id, model.logits(hidden).to(at::kFloat));
  }
  write_safetensors(out, logits);
}

void cmd_bench(int argc, char** argv) {
  cxxopts::Options o("foresight-model bench", "Time the full forward over random tokens.");
  add_runtime_options(o);
  o.add_options()("tokens", "sequence length", cxxopts::value<int64_t>()->default_value("512"))(
      "repeats", "timed runs after one warm-up (the best and the median are reported)", cxxopts::value<int64_t>()->default_value("3"))(
      "threads", "intra-op threads (0: the default, OMP_NUM_THREADS or else the physical cores this process may run on)", cxxopts::value<int>()->default_value("0"));
  const auto r = parse_options(o, argc, argv);
  if (r["threads"].as<int>() > 0) at::set_num_threads(r["threads"].as<int>());
  const Transformer model = load_model(r);
  const int64_t n = std::min(r["tokens"].as<int64_t>(), model.config().max_position_embeddings);
  c10::InferenceMode inference;
  const at::Tensor ids = at::randint(model.config().vocab_size, {n}, at::kLong);
  auto run = [&] { model.logits(model.forward(ids, 0, no_cache_attention())).sum().item<float>(); };
  if (r["repeats"].as<int64_t>() < 1) throw Error("--repeats must be 1 or more");
  run();  // warm-up
  std::vector<double> secs;
  for (int64_t i = 0; i < r["repeats"].as<int64_t>(); ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    run();
    secs.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(secs.begin(), secs.end());
  const double median = (secs[(secs.size() - 1) / 2] + secs[secs.size() / 2]) / 2;
  std::cout << nlohmann::json{{"tokens", n}, {"seconds", secs.front()}, {"tokens_per_s", n / secs.front()},
                              {"seconds_median", median}, {"tokens_per_s_median", n / median},
                              {"threads", at::get_num_threads()}}.dump()
            << std::endl;
}

}  // namespace

int main(int argc, char** argv) {
  return dispatch(argc, argv, kUsage,
                  {{"init", cmd_init}, {"generate", cmd_generate}, {"score", cmd_score}, {"forward", cmd_forward},
                   {"bench", cmd_bench}});
}
