#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace foresight {

class GoldenFileWriter;

// Under torchrun each rank of `foresight-golden run` appends its traces to its own golden file
// beside the output, OUTPUT.rank<R>-of-<N> (a complete golden file, resumable like the output);
// rank 0 then moves them into the output. Readers only ever see the output.
std::string golden_shard_path(const std::string& output, int64_t rank, int64_t world_size);

// Refuses to start when shards of a run over another number of ranks lie beside `output`: their
// traces belong in the output, and only that run (same rank count) merges them.
void refuse_foreign_shards(const std::string& output, int64_t world_size);

// Appends to `out` each trace of `order` that it lacks, in that order, from the shards of the
// `world_size` ranks (then any other trace they hold); then removes the shards. Every append is a closed transaction, so a merge
// cut off is finished by the next run. Returns the number of traces moved.
int64_t merge_golden_shards(GoldenFileWriter& out, const std::string& output, int64_t world_size,
                            const std::vector<std::string>& order);

}  // namespace foresight
