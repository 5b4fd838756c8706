#include "kernels/bench_table.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

namespace foresight {

double time_call(const std::function<void()>& fn, const std::function<void()>& sync, int warmup, int calls) {
  for (int i = 0; i < warmup; ++i) fn();
  if (sync) sync();
  std::vector<double> times;
  for (int i = 0; i < calls; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    if (sync) sync();
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

void print_bench(const BenchWork& work, const std::vector<BenchRow>& rows) {
  std::printf("%s: %.3g GFLOP, %.3g MB per call\n", work.description.c_str(), work.flops / 1e9, work.bytes / 1e6);
  std::printf("%-28s%12s%10s%10s%11s%10s\n", "path", "ms", "TFLOP/s", "GB/s", "roofline", "vs first");
  const double first = rows.empty() ? 0 : rows.front().seconds;
  for (const BenchRow& r : rows) {
    if (r.seconds < 0) {
      std::printf("%-28s  %s\n", r.path.c_str(), r.note.c_str());
      continue;
    }
    const double tflops = work.flops / r.seconds / 1e12, gbs = work.bytes / r.seconds / 1e9;
    const double roofline = std::max(work.flops / kH200Bf16Flops, work.bytes / kH200Bytes) / r.seconds;
    std::printf("%-28s%12.3f%10.2f%10.1f%10.1f%%%9.2fx\n", r.path.c_str(), r.seconds * 1e3, tflops, gbs,
                100 * roofline, first > 0 ? first / r.seconds : 0.0);
  }
}

}  // namespace foresight
