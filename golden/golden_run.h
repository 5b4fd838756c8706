#pragma once

namespace foresight {

struct GoldenRunConfig;

// `foresight-golden run`: records every trace of the config's traces file that reaches an eviction
// step, with its Golden Eviction drops, into the config's golden file; resumes an existing one.
// Under torchrun rank r records the traces i with i % world == r into its shard
// (golden/golden_shards.h) and rank 0 then moves the shards into the output, so the result holds
// what a one-process run writes.
void run_golden(const GoldenRunConfig& rc);

}  // namespace foresight
