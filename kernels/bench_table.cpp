#include "kernels/bench_table.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

namespace foresight {

BenchTime time_call(const std::function<void()>& fn, const std::function<void()>& sync, int warmup, int calls) {
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
  return {(times[(times.size() - 1) / 2] + times[times.size() / 2]) / 2, times.front()};
}

void print_bench(const BenchWork& work, const std::vector<BenchRow>& rows) {
  std::printf("%s: %.3g GFLOP, %.3g MB per call; CPU rows on %d thread(s)\n", work.description.c_str(),
              work.flops / 1e9, work.bytes / 1e6, at::get_num_threads());
  std::printf("%-28s%10s%11s%10s%10s%11s%10s\n", "path", "ms min", "ms median", "TFLOP/s", "GB/s", "roofline",
              "vs first");
  const double first = rows.empty() ? 0 : rows.front().seconds.median;
  for (const BenchRow& r : rows) {
    const double s = r.seconds.median;
    if (s < 0) {
      std::printf("%-28s  %s\n", r.path.c_str(), r.note.c_str());
      continue;
    }
    const double tflops = work.flops / s / 1e12, gbs = work.bytes / s / 1e9;
    const double roofline = std::max(work.flops / kH200Bf16Flops, work.bytes / kH200Bytes) / s;
    std::printf("%-28s%10.3f%11.3f%10.2f%10.1f%10.1f%%%9.2fx\n", r.path.c_str(), r.seconds.min * 1e3, s * 1e3, tflops,
                gbs, 100 * roofline, first > 0 ? first / s : 0.0);
  }
}

}  // namespace foresight
