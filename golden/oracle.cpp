#include "golden/oracle.h"

#include <ATen/ATen.h>

#include "kernels/drop_selection.h"

namespace foresight {

OracleDrops golden_eviction(const at::Tensor& blocks, const EvictionSchedule& schedule) {
  const int64_t kv_heads = blocks.size(0), len = blocks.size(1);
  const int64_t budget = schedule.budget, interval = schedule.interval;
  const int64_t steps = schedule.steps(len);
  const auto i64 = at::TensorOptions().dtype(at::kLong).device(blocks.device());
  OracleDrops out{at::empty({steps, kv_heads, interval}, at::kInt),
                  at::empty({steps, kv_heads, interval}, at::kInt),
                  at::empty({steps, kv_heads, budget}, at::kFloat)};
  if (steps == 0) return out;

  // The future blocks B/W + 1 .. ceil(L/W) - 1 are exactly one per step (step s starts at
  // B/W + 1 + s). Their suffix max, computed in place over a single copy, makes each step's
  // future one column: future_from[k, j, s] = max over blocks b >= B/W + 1 + s.
  at::Tensor future_from = blocks.slice(2, budget / interval + 1).clone();
  TORCH_CHECK(future_from.size(2) == steps, "one future block per eviction step");
  for (int64_t s = steps - 2; s >= 0; --s) {
    at::Tensor col = future_from.select(2, s);
    at::maximum_out(col, col, future_from.select(2, s + 1));
  }
  at::Tensor positions = at::arange(budget, i64).expand({kv_heads, budget}).contiguous();
  for (int64_t s = 0; s < steps; ++s) {
    const at::Tensor future = future_from.select(2, s).gather(1, positions);
    // A stable ascending sort puts the least future attention first, equal values in slot order.
    // Protected entries (the first `protect` slots, for good) get an infinite future: never dropped.
    const at::Tensor candidates = schedule.protect ? -mask_protected(-future, schedule.protect) : future;
    const at::Tensor order = std::get<1>(candidates.sort(/*stable=*/true, /*dim=*/-1, /*descending=*/false));
    const at::Tensor drops = std::get<0>(order.slice(-1, 0, interval).sort(-1));
    out.drop_slots[s].copy_(drops);
    out.drop_positions[s].copy_(positions.gather(1, drops));
    out.scores[s].copy_(-future);
    // Compact: survivors keep their order, then the chunk's W new keys take the last slots.
    at::Tensor keep = at::ones({kv_heads, budget}, i64.dtype(at::kBool));
    keep.scatter_(1, drops, false);
    const at::Tensor fresh = at::arange(budget + s * interval, budget + (s + 1) * interval, i64);
    positions = at::cat({positions.masked_select(keep).view({kv_heads, budget - interval}),
                         fresh.expand({kv_heads, interval})}, 1);
  }
  return out;
}

}  // namespace foresight
