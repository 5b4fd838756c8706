#include "cache/budgeted_runner.h"

#include <ATen/ATen.h>

#include "common/error.h"
#include "model/token_metrics.h"

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
  const at::Tensor tokens = at::tensor(at::ArrayRef<int64_t>(ids), at::kLong);
  BudgetedDecoder decoder(model, schedule, {&decider});
  const at::Tensor hidden = decoder.feed(tokens.unsqueeze(0))[0];
  return {token_metrics(model, hidden, tokens).nll, decoder.drop_slots()[0], decoder.drop_positions()[0]};
}

}  // namespace foresight
