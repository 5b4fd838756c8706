#include "golden/reevict.h"

#include <ATen/ATen.h>

#include "common/error.h"
#include "golden/recorder.h"

namespace foresight {

at::Tensor merge_blocks(const at::Tensor& attention, int64_t m) {
  if (m == 1) return attention.to(at::kFloat);
  const int64_t n = attention.size(-1), merged = (n + m - 1) / m;
  const at::Tensor padded = at::constant_pad_nd(attention.to(at::kFloat), {0, merged * m - n});
  auto shape = padded.sizes().vec();
  shape.back() = merged;
  shape.push_back(m);
  return padded.view(shape).mean(-1);
}

std::string reevict_refusal(int64_t recorded_interval, const EvictionSchedule& schedule) {
  if (schedule.interval % recorded_interval == 0) return "";
  return "interval " + std::to_string(schedule.interval) + " is not a multiple of the recorded interval " +
         std::to_string(recorded_interval) + ", so its blocks cannot be merged from the stored attention";
}

void reevict(GoldenTrace& trace, int64_t recorded_interval, const EvictionSchedule& schedule) {
  const std::string refusal = reevict_refusal(recorded_interval, schedule);
  if (!refusal.empty()) throw Error(refusal);
  if (!trace.attention.defined()) throw Error("the trace has no stored attention to replay");
  replay_oracle(merge_blocks(trace.attention, schedule.interval / recorded_interval), schedule, trace);
}

}  // namespace foresight
