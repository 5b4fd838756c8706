#include "cache/budgeted_runner.h"

#include <ATen/ATen.h>

#include "common/error.h"
#include "model/token_metrics.h"
#include "model/transformer.h"

namespace foresight {

at::Tensor ForcedDrops::decide(const CacheStep& step) {
  if (step.layer >= drop_slots_.size(0) || step.step >= drop_slots_.size(1)) {
    throw Error("forced drops cover " + std::to_string(drop_slots_.size(1)) + " steps; step " +
                std::to_string(step.step) + " was asked for");
  }
  // All steps on the device in one copy, not one (blocking) copy per layer and step.
  if (drop_slots_.device() != step.keys.device() || drop_slots_.scalar_type() != at::kLong) {
    drop_slots_ = drop_slots_.to(step.keys.device(), at::kLong);
  }
  return drop_slots_[step.layer][step.step];
}

BudgetedRun run_budgeted(const Transformer& model, const std::vector<int64_t>& ids,
                         const EvictionSchedule& schedule, DropDecider& decider) {
  // On the model's device at once: fed from the host, every chunk's piece would be its own copy.
  const at::Tensor tokens = at::tensor(at::ArrayRef<int64_t>(ids), at::kLong).to(model.options().device());
  BudgetedDecoder decoder(model, schedule, {&decider});
  const at::Tensor hidden = decoder.feed(tokens.unsqueeze(0))[0];
  return {token_metrics(model, hidden, tokens).nll, decoder.drop_slots()[0], decoder.drop_positions()[0]};
}

}  // namespace foresight
