#pragma once
// The benchmarks of `foresight-kernels bench <name>`, one per kernel (kernels/<name>_bench.cpp).
// Each runs representative sizes and prints its table with print_bench (kernels/bench_table.h);
// `quick` shrinks the sizes so that a CPU-only machine finishes in seconds.

namespace foresight {

void bench_block_attention(bool quick);
void bench_chunk_attention(bool quick);
void bench_select_compact(bool quick);
void bench_scorer_mlp(bool quick);

}  // namespace foresight
