#include "cache/budgeted_runner.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "cache/layer_cache.h"
#include "common/error.h"
#include "model/token_metrics.h"
#include "model/transformer.h"

namespace foresight {

at::Tensor ForcedDrops::decide(const CacheStep& step) {
  if (step.layer >= drop_slots_.size(0) || step.step >= drop_slots_.size(1)) {
    throw Error("forced drops cover " + std::to_string(drop_slots_.size(1)) + " steps; step " +
                std::to_string(step.step) + " was asked for");
  }
  return drop_slots_[step.layer][step.step].to(step.keys.device(), at::kLong);
}

BudgetedRun run_budgeted(const Transformer& model, const std::vector<int64_t>& ids,
                         const EvictionSchedule& schedule, DropDecider& decider) {
  c10::NoGradGuard frozen;  // the model is frozen; deciders that train enable grad themselves
  const ModelConfig& c = model.config();
  const auto len = static_cast<int64_t>(ids.size());
  const int64_t budget = schedule.budget, interval = schedule.interval, steps = schedule.steps(len);
  const at::Tensor tokens = at::tensor(at::ArrayRef<int64_t>(ids), at::kLong);

  std::vector<LayerCache> caches(static_cast<std::size_t>(c.num_layers));
  BudgetedRun run{at::Tensor(), at::empty({c.num_layers, steps, c.num_kv_heads, interval}, at::kInt),
                  at::empty({c.num_layers, steps, c.num_kv_heads, interval}, at::kInt)};
  int64_t chunk_start = 0, step = -1;  // step >= 0: this chunk ends with eviction step `step`
  const AttentionFn attention = [&](int64_t layer, const LayerQKV& qkv) {
    LayerCache& cache = caches[static_cast<std::size_t>(layer)];
    const at::Tensor out = cache.append(qkv, chunk_start);
    if (step >= 0) {
      CacheStep candidates = cache.candidates(budget);
      candidates.layer = layer;
      candidates.step = step;
      const at::Tensor drops = decider.decide(candidates);
      run.drop_slots[layer][step].copy_(drops);
      run.drop_positions[layer][step].copy_(candidates.positions.gather(1, drops));
      cache.evict(drops, budget);
    }
    return out;
  };

  std::vector<at::Tensor> hidden;
  for (int64_t s = -1; chunk_start < len; ++s) {  // s = -1: the initial chunk
    const int64_t end = std::min(len, s < 0 ? budget : chunk_start + interval);
    step = s >= 0 && s < steps ? s : -1;
    hidden.push_back(model.forward(tokens.slice(0, chunk_start, end), chunk_start, attention));
    chunk_start = end;
  }
  run.nll = token_metrics(model, at::cat(hidden), tokens).nll;
  return run;
}

}  // namespace foresight
