// foresight-golden: stage 1. Record future attention over reasoning traces and replay the Golden
// Eviction oracle into an HDF5 trace file (DESIGN.md §2-§3, §8).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <vector>

#include "common/atomic_output.h"
#include "common/cli_options.h"
#include "common/config.h"
#include "common/error.h"
#include "common/progress.h"
#include "golden/golden_config.h"
#include "golden/golden_file.h"
#include "golden/golden_run.h"
#include "golden/reevict.h"
#include "model/checkpoint.h"
#include "model/transformer.h"

using namespace foresight;

namespace {

constexpr const char* kUsage = R"(usage: foresight-golden <command> [options]

commands:
  run       --config FILE [key=value ...]  record traces and write Golden Eviction drops (HDF5);
            an existing output of the same model and schedule is resumed; under torchrun
            each rank records a share of the traces and rank 0 merges them into the output
  validate  --config FILE [key=value ...]  check a run config (and its model, when present)
  evict     --input IN.h5 --output OUT.h5 --budget B --interval W
            replay the oracle for another B/W from a file recorded with keep_attention
  inspect   FILE                           validate a golden file and summarise it
  bench     --length L --variant tiled|reference   time the recording of one layer, min and median (JSON line)

Config keys (configs/golden/tiny.yaml documents each): model, traces, output, budget, interval,
device, dtype, query_tile, key_tile, keep_attention, protect, dist_timeout_s, progress_every_s,
expect_model.{architecture,layers,heads,kv_heads,head_dim}. Dotted keys override nested ones:
expect_model.layers=28.
)";

Config load_config(int argc, char** argv, const std::string& name) {
  cxxopts::Options o("foresight-golden " + name, "See `foresight-golden --help` for the config keys.");
  return parse_config_invocation(o, argc, argv).config;
}

void cmd_run(int argc, char** argv) { run_golden(parse_golden_config(load_config(argc, argv, "run"))); }

void cmd_validate(int argc, char** argv) {
  const Config config = load_config(argc, argv, "validate");
  const GoldenRunConfig rc = parse_golden_config(config);
  std::printf("%s: config ok (budget %lld, interval %lld)\n", config.source().c_str(),
              static_cast<long long>(rc.options.schedule.budget), static_cast<long long>(rc.options.schedule.interval));
  const std::filesystem::path config_json = std::filesystem::path(rc.model) / "config.json";
  if (!std::filesystem::exists(config_json)) {
    std::printf("model %s not present: model checks skipped\n", rc.model.c_str());
    return;
  }
  std::ifstream in(config_json);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  rc.expect.check(parse_model_config(text, config_json.string()), rc.model);
  std::printf("model %s: config.json matches\n", rc.model.c_str());
}

void cmd_evict(int argc, char** argv) {
  cxxopts::Options o("foresight-golden evict",
                     "Replay Golden Eviction for another budget/interval from a golden file recorded with\n"
                     "keep_attention. The new interval must be a multiple of the recorded one. Drops follow\n"
                     "the stored float16 attention, so they can differ from a fresh float32 run at near-ties.");
  o.add_options()("input", "golden file with attention", cxxopts::value<std::string>())(
      "output", "new golden file", cxxopts::value<std::string>())(
      "budget", "B", cxxopts::value<int64_t>())("interval", "W", cxxopts::value<int64_t>())(
      "protect", "first positions never dropped: a count or 'prompt' (default: the input's)", cxxopts::value<std::string>());
  const auto r = parse_options(o, argc, argv);
  const std::string input = required<std::string>(r, "input"), output = required<std::string>(r, "output");
  // Never replace a file: the output could be another run's golden file, or this input under
  // another spelling. No --force: removing the old file first is one explicit command.
  std::error_code ec;
  if (std::filesystem::exists(input) && std::filesystem::equivalent(input, output, ec)) {
    throw Error("--output " + output + " is the input file " + input + ": choose a new path");
  }
  if (std::filesystem::exists(std::filesystem::symlink_status(output))) {
    throw Error("--output " + output + " already exists: choose a new path (evict never replaces a file)");
  }
  const GoldenFileReader in(input);
  const EvictionSchedule schedule{required<int64_t>(r, "budget"), required<int64_t>(r, "interval")};
  schedule.validate();
  const int64_t recorded = in.header().schedule.interval;
  if (!in.header().keep_attention) throw Error(input + " was recorded without keep_attention: nothing to replay");
  const std::string refusal = reevict_refusal(recorded, schedule);
  if (!refusal.empty()) throw Error(refusal);
  GoldenHeader header = in.header();
  if (r.count("protect")) header.protect = Protect::parse(r["protect"].as<std::string>());
  for (const std::string& id : in.trace_ids()) header.protect.resolve(schedule, in.prompt_len(id), input + ": trace " + id);
  AtomicOutput out(output);
  header.schedule = schedule;
  header.keep_attention = false;
  header.config_yaml += "# re-evicted by foresight-golden evict: budget " + std::to_string(schedule.budget) +
                        ", interval " + std::to_string(schedule.interval) +
                        ", protect " + header.protect.text() + "\n";
  {
    GoldenFileWriter writer(out.temp_path(), header);
    int64_t skipped = 0;
    ProgressBar bar("evict", static_cast<int64_t>(in.trace_ids().size()), "traces");
    for (const std::string& id : in.trace_ids()) {
      GoldenTrace t = in.read(id);
      bar.advance();
      if (schedule.steps(t.tokens.size(0)) == 0) {
        ++skipped;
        continue;
      }
      reevict(t, recorded, header.protect.resolve(schedule, in.prompt_len(id), input + ": trace " + id));
      t.attention = at::Tensor();
      writer.append(id, t, in.prompt_len(id));
    }
    bar.finish();
    std::fprintf(stderr, "evict: wrote %zu traces (%lld too short for this schedule)\n",
                 writer.completed().size(), static_cast<long long>(skipped));
  }
  out.commit();
}

void cmd_inspect(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help") {
    std::cout << "usage: foresight-golden inspect FILE\n  validate a golden file and print a summary\n";
    if (argc < 2) throw Error("inspect needs a FILE");
    return;
  }
  const GoldenFileReader in(argv[1]);
  const GoldenHeader& h = in.header();
  std::printf("%s: %s v%lld, budget %lld, interval %lld, protect %s%s\nmodel: %s\n", argv[1], kGoldenFormat,
              static_cast<long long>(kGoldenVersion), static_cast<long long>(h.schedule.budget),
              static_cast<long long>(h.schedule.interval), h.protect.text().c_str(),
              h.keep_attention ? ", attention kept" : "",
              h.model.describe().c_str());
  const int64_t layers = h.model.layers;
  std::vector<double> dropped_sum(layers, 0), kept_sum(layers, 0);
  std::vector<int64_t> dropped_n(layers, 0), kept_n(layers, 0);
  int64_t min_len = INT64_MAX, max_len = 0, total_len = 0, total_steps = 0;
  for (const std::string& id : in.trace_ids()) {
    const GoldenTrace t = in.read(id);
    const int64_t len = t.tokens.size(0);
    min_len = std::min(min_len, len);
    max_len = std::max(max_len, len);
    total_len += len;
    total_steps += t.drop_slots.size(1);
    for (int64_t l = 0; l < layers; ++l) {
      const at::Tensor scores = t.oracle_scores[l];
      const at::Tensor is_dropped = at::zeros_like(scores, at::kBool).scatter_(-1, t.drop_slots[l].to(at::kLong), true);
      dropped_sum[l] += scores.masked_select(is_dropped).to(at::kDouble).sum().item<double>();
      kept_sum[l] += scores.masked_select(is_dropped.logical_not()).to(at::kDouble).sum().item<double>();
      dropped_n[l] += is_dropped.sum().item<int64_t>();
      kept_n[l] += scores.numel() - is_dropped.sum().item<int64_t>();
    }
  }
  const auto n = static_cast<int64_t>(in.trace_ids().size());
  std::printf("traces: %lld, tokens %lld (min %lld, mean %.0f, max %lld), eviction steps %lld (all traces, each layer)\n",
              static_cast<long long>(n), static_cast<long long>(total_len), static_cast<long long>(n ? min_len : 0),
              n ? static_cast<double>(total_len) / static_cast<double>(n) : 0.0, static_cast<long long>(max_len),
              static_cast<long long>(total_steps));
  std::printf("\nmean oracle score (-future attention; higher = more evictable)\n%-6s %14s %14s\n", "layer",
              "dropped", "kept");
  for (int64_t l = 0; l < layers; ++l) {
    std::printf("%-6lld %14.6g %14.6g\n", static_cast<long long>(l),
                dropped_n[l] ? dropped_sum[l] / static_cast<double>(dropped_n[l]) : 0.0,
                kept_n[l] ? kept_sum[l] / static_cast<double>(kept_n[l]) : 0.0);
  }
}

double peak_rss_mb() {
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // Linux: KiB
}

void cmd_bench(int argc, char** argv) {
  cxxopts::Options o("foresight-golden bench",
                     "Record one layer's block attention over random q/k/v of L tokens, --warmup untimed then\n"
                     "--repeats timed runs, and print one JSON line: min and median seconds, tokens/s, the\n"
                     "threads, and peak resident memory with its baseline (the process with its libraries and\n"
                     "the inputs, before the first run), so peak - baseline is the work's own. experiments/\n"
                     "bench_recorder.py runs it per length and variant and prints the table.");
  o.add_options()("length", "L", cxxopts::value<int64_t>()->default_value("2048"))(
      "variant", "tiled (the recorder) or reference (full L x L softmax)",
      cxxopts::value<std::string>()->default_value("tiled"))(
      "heads", "query heads", cxxopts::value<int64_t>()->default_value("4"))(
      "kv-heads", "KV heads", cxxopts::value<int64_t>()->default_value("2"))(
      "head-dim", "head dimension", cxxopts::value<int64_t>()->default_value("64"))(
      "interval", "W (block size)", cxxopts::value<int64_t>()->default_value("256"))(
      "query-tile", "recorder query tile", cxxopts::value<int64_t>()->default_value("1024"))(
      "key-tile", "recorder key tile", cxxopts::value<int64_t>()->default_value("1024"))(
      "warmup", "untimed runs first", cxxopts::value<int64_t>()->default_value("1"))(
      "repeats", "timed runs", cxxopts::value<int64_t>()->default_value("3"))(
      "threads", "intra-op threads (0: the default, OMP_NUM_THREADS or else the physical cores this process may "
                 "run on)", cxxopts::value<int>()->default_value("0"));
  const auto r = parse_options(o, argc, argv);
  const int64_t len = r["length"].as<int64_t>(), w = r["interval"].as<int64_t>();
  const int64_t warmup = r["warmup"].as<int64_t>(), repeats = r["repeats"].as<int64_t>();
  const std::string variant = r["variant"].as<std::string>();
  if (variant != "tiled" && variant != "reference") throw Error("--variant must be tiled or reference");
  if (warmup < 0) throw Error("--warmup must be 0 or more");
  if (repeats < 1) throw Error("--repeats must be 1 or more");
  if (r["threads"].as<int>() < 0) throw Error("--threads must be 0 (the default) or more");
  if (r["threads"].as<int>() > 0) at::set_num_threads(r["threads"].as<int>());
  at::manual_seed(0);
  const at::Tensor q = at::randn({len, r["heads"].as<int64_t>(), r["head-dim"].as<int64_t>()});
  const at::Tensor k = at::randn({len, r["kv-heads"].as<int64_t>(), r["head-dim"].as<int64_t>()});
  const at::Tensor v = at::randn_like(k);
  const double baseline_mb = peak_rss_mb();
  auto record = [&] {
    return variant == "tiled" ? block_attention(q, k, v, w, {r["query-tile"].as<int64_t>(), r["key-tile"].as<int64_t>()})
                              : block_attention_reference(q, k, v, w);
  };
  for (int64_t i = 0; i < warmup; ++i) record();
  std::vector<double> secs;
  double checksum = 0;
  for (int64_t i = 0; i < repeats; ++i) {
    const auto start = std::chrono::steady_clock::now();
    const BlockAttention a = record();
    secs.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    checksum = a.blocks.sum().item<double>();
  }
  std::sort(secs.begin(), secs.end());
  // The median of an even count is the mean of the middle two.
  const double median = (secs[(secs.size() - 1) / 2] + secs[secs.size() / 2]) / 2;
  std::cout << nlohmann::json{{"variant", variant},
                              {"length", len},
                              {"threads", at::get_num_threads()},
                              {"warmup", warmup},
                              {"repeats", repeats},
                              {"seconds_min", secs.front()},
                              {"seconds_median", median},
                              {"tokens_per_s_max", static_cast<double>(len) / secs.front()},
                              {"tokens_per_s_median", static_cast<double>(len) / median},
                              {"baseline_rss_mb", baseline_mb},
                              {"peak_rss_mb", peak_rss_mb()},
                              {"checksum", checksum}}
                   .dump()
            << std::endl;
}

}  // namespace

int main(int argc, char** argv) {
  return dispatch(argc, argv, kUsage,
                  {{"run", cmd_run}, {"validate", cmd_validate}, {"evict", cmd_evict}, {"inspect", cmd_inspect},
                   {"bench", cmd_bench}});
}
