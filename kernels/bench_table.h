#pragma once
// What every kernel benchmark prints: one row per path (CPU reference, LibTorch ops on the GPU,
// the kernel) with its time, throughput and share of the H200 roofline.
#include <functional>
#include <string>
#include <vector>

namespace foresight {

inline constexpr double kH200Bf16Flops = 790e12;  // dense bf16 matrix products, as measured
inline constexpr double kH200Bytes = 4.3e12;      // device-to-device bandwidth, as measured

struct BenchWork {
  std::string description;  // the sizes, e.g. "L 8192, H 32/8, d 128, W 256"
  double flops = 0;         // useful floating-point operations of one call
  double bytes = 0;         // bytes one call must read and write at least
};

// Seconds per call over the timed runs; < 0: not run.
struct BenchTime {
  BenchTime(double seconds = -1) : median(seconds), min(seconds) {}  // NOLINT: -1 reads as "not run"
  BenchTime(double median_seconds, double min_seconds) : median(median_seconds), min(min_seconds) {}
  double median, min;
};

struct BenchRow {
  std::string path;
  BenchTime seconds;  // per call; < 0: not run, `note` says why
  std::string note;
};

// Median and minimum wall time of `calls` runs of `fn` after `warmup` runs; `sync` (may be empty)
// runs after each call so that asynchronous device work is counted.
BenchTime time_call(const std::function<void()>& fn, const std::function<void()>& sync, int warmup, int calls);

// Prints the table: path, min and median time, TFLOP/s, GB/s and roofline share (the larger of
// compute and memory) at the median, and the ratio of each path's median to the first row's; the
// header states the CPU rows' intra-op threads.
void print_bench(const BenchWork& work, const std::vector<BenchRow>& rows);

}  // namespace foresight
