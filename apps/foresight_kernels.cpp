// foresight-kernels: the CUDA kernels' benchmarks (kernels/README.md), each printing the CPU
// reference, the LibTorch-ops path on the GPU and the kernel side by side.
#include <ATen/Context.h>

#include <cstdio>
#include <functional>
#include <map>

#include "common/cli_options.h"
#include "kernels/kernel_benches.h"

using namespace foresight;

namespace {

const std::map<std::string, std::function<void(bool)>> kBenches = {
    {"block_attention", bench_block_attention},
    {"chunk_attention", bench_chunk_attention},
    {"select_compact", bench_select_compact},
    {"scorer_mlp", bench_scorer_mlp},
};

constexpr const char* kUsage = R"(usage: foresight-kernels bench <name|all> [--quick]

Benchmarks a CUDA kernel beside its CPU reference and the LibTorch-ops path on the same GPU: time,
TFLOP/s, GB/s and the share of an H200's roofline. Without a GPU only the CPU rows run.
kernels: block_attention, chunk_attention, select_compact, scorer_mlp, all
)";

void cmd_bench(int argc, char** argv) {
  cxxopts::Options o("foresight-kernels bench", kUsage);
  o.add_options()("name", "kernel, or all", cxxopts::value<std::string>())("quick", "small sizes (CPU-only smoke run)");
  o.parse_positional({"name"});
  const auto r = parse_options(o, argc, argv);
  const std::string name = required<std::string>(r, "name");
  std::printf("GPU: %s\n", at::hasCUDA() ? "yes" : "none (CPU rows only)");
  for (const auto& [kernel, bench] : kBenches) {
    if (name != "all" && name != kernel) continue;
    std::printf("\n== %s\n", kernel.c_str());
    bench(r.count("quick") > 0);
  }
  if (name != "all" && !kBenches.count(name)) throw Error("unknown kernel \"" + name + "\"\n" + kUsage);
}

}  // namespace

int main(int argc, char** argv) { return dispatch(argc, argv, kUsage, {{"bench", cmd_bench}}); }
