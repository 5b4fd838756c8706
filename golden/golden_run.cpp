#include "golden/golden_run.h"

#include <ATen/ATen.h>
#include <hdf5.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include "common/collective.h"
#include "common/error.h"
#include "common/progress.h"
#include "common/signal_cleanup.h"
#include "common/traces.h"
#include "golden/golden_config.h"
#include "golden/golden_file.h"
#include "golden/golden_shards.h"
#include "model/checkpoint.h"
#include "model/runtime_config.h"
#include "model/trace_checks.h"
#include "model/transformer.h"

namespace foresight {

namespace {

std::string fmt(const char* format, double a) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, a);
  return buf;
}

// A resumed output must have been recorded from this traces file as it is now: every trace it holds
// is still in the file, with the same tokens and prompt_len. An id alone would keep a stale trace
// whose tokens were changed, or one removed from the file since (both refused, naming the trace).
void check_output_matches_traces(const std::string& output, const std::string& traces_path,
                                 const std::vector<Trace>& traces) {
  if (!std::filesystem::exists(output) || H5Fis_hdf5(output.c_str()) <= 0) return;  // new, or refused later
  std::map<std::string, const Trace*> by_id;
  for (const Trace& t : traces) by_id[t.id] = &t;
  const GoldenFileReader existing(output);
  const std::string remedy = ": it cannot be resumed with this traces file; choose another output, or remove it";
  for (const std::string& id : existing.trace_ids()) {
    const auto it = by_id.find(id);
    if (it == by_id.end()) {
      throw Error("output " + output + " holds trace " + id + ", which " + traces_path + " no longer has" + remedy);
    }
    const Trace& t = *it->second;
    const at::Tensor recorded = existing.tokens(id);
    const bool same_tokens = recorded.numel() == static_cast<int64_t>(t.input_ids.size()) &&
                             std::equal(t.input_ids.begin(), t.input_ids.end(), recorded.data_ptr<int32_t>());
    if (!same_tokens || existing.prompt_len(id) != t.prompt_len) {
      throw Error("output " + output + " holds trace " + id + " recorded from other " +
                  (same_tokens ? "prompt_len" : "tokens") + " than " + traces_path + " has now" + remedy);
    }
  }
}

}  // namespace

void run_golden(const GoldenRunConfig& rc) {
  require_device(rc.runtime.device);
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
  check_output_matches_traces(rc.output, rc.traces, traces);
  const bool output_existed = std::filesystem::exists(rc.output);

  std::unique_ptr<Collective> ranks =
      collective_from_environment(std::chrono::seconds(rc.dist_timeout_s), rc.runtime.device);
  const int64_t rank = ranks->rank(), world = ranks->world_size();
  const Transformer model(ckpt, rc.runtime);
  const GoldenHeader header{fingerprint(ckpt), schedule, rc.options.keep_attention, rc.yaml, rc.protect};
  // Rank 0 creates or reopens the output (refusing one of another model or schedule, dropping a
  // trace whose write was cut off) before any rank reads which traces it already holds.
  std::optional<GoldenFileWriter> output;
  if (rank == 0) output.emplace(rc.output, header);
  // A run that fails before it wrote a trace (another rank refused, a rank died) removes the output it
  // created: an empty file of its config would block a rerun of the original command.
  struct RemoveIfEmptyOnFailure {
    std::optional<GoldenFileWriter>& output;
    const std::string& path;
    bool created;
    ~RemoveIfEmptyOnFailure() {
      if (!created || std::uncaught_exceptions() == 0 || !output || !output->completed().empty()) return;
      output.reset();
      std::error_code ignored;
      std::filesystem::remove(path, ignored);
    }
  } remove_if_empty{output, rc.output, rank == 0 && !output_existed};
  // Killed by a signal (torchrun ends the other ranks when one fails) while it holds no trace: the same.
  std::optional<RemovedOnSignal> removed_on_signal;
  if (remove_if_empty.created) removed_on_signal.emplace(rc.output);
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
  const bool log = !::isatty(STDERR_FILENO);  // a log gets lines, not a redrawn bar: at most one every N s
  auto last_line = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < todo.size(); ++i) {
    const Trace& t = *todo[i];
    const auto start = std::chrono::steady_clock::now();
    GoldenOptions options = rc.options;
    options.schedule = rc.protect.resolve(schedule, t.prompt_len, rc.traces + ": trace " + t.id);
    const GoldenTrace g = record_golden_trace(model, t.input_ids, options);
    writer.append(t.id, g, t.prompt_len);
    if (world == 1) removed_on_signal.reset();  // it holds a trace now
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!bar) continue;
    bar->advance(static_cast<int64_t>(t.input_ids.size()));
    const auto now = std::chrono::steady_clock::now();
    if (log && (i == 0 || i + 1 == todo.size() ||
                std::chrono::duration<double>(now - last_line).count() >= static_cast<double>(rc.progress_every_s))) {
      last_line = now;
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
    removed_on_signal.reset();  // the merge writes traces into it
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
