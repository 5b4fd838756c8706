#include "golden/golden_run.h"

#include <ATen/ATen.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <set>

#include "common/collective.h"
#include "common/error.h"
#include "common/progress.h"
#include "common/traces.h"
#include "golden/golden_config.h"
#include "golden/golden_file.h"
#include "golden/golden_shards.h"
#include "model/checkpoint.h"
#include "model/trace_checks.h"
#include "model/transformer.h"

namespace foresight {

namespace {

std::string fmt(const char* format, double a) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, a);
  return buf;
}

}  // namespace

void run_golden(const GoldenRunConfig& rc) {
  const EvictionSchedule& schedule = rc.options.schedule;

  // Everything a trace could fail on is checked before the first one is recorded.
  const std::vector<Trace> traces = read_traces(rc.traces);
  if (traces.empty()) throw Error("traces " + rc.traces + " holds no traces: nothing to record");
  if (std::none_of(traces.begin(), traces.end(),
                   [&](const Trace& t) { return schedule.steps(static_cast<int64_t>(t.input_ids.size())) > 0; })) {
    throw Error("every trace of " + rc.traces + " has at most budget + interval = " +
                std::to_string(schedule.budget + schedule.interval) +
                " tokens: none reaches an eviction step, so there is nothing to record");
  }
  for (const Trace& t : traces) {
    check_trace_id(t.id);
    rc.protect.resolve(schedule, t.prompt_len, rc.traces + ": trace " + t.id);  // refuses what cannot be protected
  }
  const Checkpoint ckpt = load_checkpoint(rc.model);
  rc.expect.check(ckpt.config, rc.model);
  for (const Trace& t : traces) check_trace_fits(ckpt.config, t);
  refuse_foreign_shards(rc.output, rank_layout_from_environment().world_size);

  std::unique_ptr<Collective> ranks =
      collective_from_environment(std::chrono::seconds(rc.dist_timeout_s), rc.runtime.device);
  const int64_t rank = ranks->rank(), world = ranks->world_size();
  const Transformer model(ckpt, rc.runtime);
  const GoldenHeader header{fingerprint(ckpt), schedule, rc.options.keep_attention, rc.yaml, rc.protect};
  // Rank 0 creates or reopens the output (refusing one of another model or schedule, dropping a
  // trace whose write was cut off) before any rank reads which traces it already holds.
  std::optional<GoldenFileWriter> output;
  if (rank == 0) output.emplace(rc.output, header);
  std::set<std::string> done;
  std::optional<GoldenFileWriter> shard;
  if (world == 1) {
    done = output->completed();
  } else {
    std::vector<at::Tensor> barrier;
    ranks->all_reduce_sum(barrier);
    {
      const GoldenFileReader existing(rc.output);  // closed before rank 0 writes to it again
      done.insert(existing.trace_ids().begin(), existing.trace_ids().end());
    }
    shard.emplace(golden_shard_path(rc.output, rank, world), header);
  }
  GoldenFileWriter& writer = shard ? *shard : *output;

  std::vector<const Trace*> todo;
  std::vector<std::string> too_short, order;
  int64_t resumed = 0, tokens = 0;
  for (std::size_t i = 0; i < traces.size(); ++i) {
    const Trace& t = traces[i];
    order.push_back(t.id);
    const bool mine = static_cast<int64_t>(i) % world == rank;
    if (done.count(t.id)) {
      if (rank == 0) ++resumed;
    } else if (schedule.steps(static_cast<int64_t>(t.input_ids.size())) == 0) {
      too_short.push_back(t.id);
    } else if (!mine) {
      continue;
    } else if (writer.completed().count(t.id)) {
      ++resumed;
    } else {
      todo.push_back(&t);
      tokens += static_cast<int64_t>(t.input_ids.size());
    }
  }
  if (resumed > 0) {
    const std::string who = world == 1 ? "" : " (rank " + std::to_string(rank) + " of " + std::to_string(world) + ")";
    std::fprintf(stderr, "golden: resuming %s%s: %lld of %zu traces already written\n", rc.output.c_str(), who.c_str(),
                 static_cast<long long>(resumed), traces.size());
  }
  // One bar, rank 0's: the others' would overwrite it on the same terminal.
  std::optional<ProgressBar> bar;
  if (rank == 0) bar.emplace(world == 1 ? "golden" : "golden rank 0", tokens, "tok");
  for (std::size_t i = 0; i < todo.size(); ++i) {
    const Trace& t = *todo[i];
    const auto start = std::chrono::steady_clock::now();
    GoldenOptions options = rc.options;
    options.schedule = rc.protect.resolve(schedule, t.prompt_len, rc.traces + ": trace " + t.id);
    const GoldenTrace g = record_golden_trace(model, t.input_ids, options);
    writer.append(t.id, g, t.prompt_len);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!bar) continue;
    bar->advance(static_cast<int64_t>(t.input_ids.size()));
    if (!::isatty(STDERR_FILENO)) {
      bar->note("golden: [" + std::to_string(i + 1) + "/" + std::to_string(todo.size()) + "] trace " + t.id + ": " +
                std::to_string(t.input_ids.size()) + " tokens, " + std::to_string(g.drop_slots.size(1)) + " steps" +
                fmt(", %.2f s", secs));
    }
  }
  if (bar) bar->finish();

  // Every shard is complete once all ranks pass here; rank 0 then moves them into the output.
  std::vector<at::Tensor> counts{at::tensor({static_cast<double>(todo.size()), static_cast<double>(resumed)}, at::kDouble)};
  ranks->all_reduce_sum(counts);
  if (rank != 0) return;
  const auto recorded = counts[0][0].item<int64_t>(), resumed_all = counts[0][1].item<int64_t>();
  if (world > 1) {
    shard.reset();
    const int64_t merged = merge_golden_shards(*output, rc.output, world, order);
    std::fprintf(stderr, "golden: %lld ranks recorded %lld traces; %lld moved from their shards into %s\n",
                 static_cast<long long>(world), static_cast<long long>(recorded), static_cast<long long>(merged),
                 rc.output.c_str());
  }
  std::fprintf(stderr, "golden: wrote %lld traces to %s (%lld resumed)\n", static_cast<long long>(recorded),
               rc.output.c_str(), static_cast<long long>(resumed_all));
  if (!too_short.empty()) {
    std::string ids;
    for (std::size_t i = 0; i < too_short.size() && i < 10; ++i) ids += (i ? ", " : "") + too_short[i];
    std::fprintf(stderr, "golden: skipped %zu traces with at most budget + interval = %lld tokens (no eviction step): %s%s\n",
                 too_short.size(), static_cast<long long>(schedule.budget + schedule.interval), ids.c_str(),
                 too_short.size() > 10 ? ", ..." : "");
  }
}

}  // namespace foresight
