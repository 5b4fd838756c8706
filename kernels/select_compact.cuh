#pragma once
// Launchers of the eviction kernels (DESIGN.md §9, kernel 3): choosing the W slots to drop per row
// and compacting a row's cache entries in place. Raw pointers only, so that the LibTorch layer
// (select_compact_op.cpp) includes this on any build. Each returns a cudaError_t as int.
#include <cstdint>

namespace foresight {

// The W slots to drop of every row of scores (float32 [rows, candidates], dense), written to
// slots (int64 [rows, drops]) in ascending order. Greedy: the `drops` highest scores, ties to the
// lower slot. Sampled: among the min(2 drops, candidates) highest, the `drops` largest of score +
// Gumbel noise, the noise drawn from Philox with (seed, row) as (seed, subsequence); that is a draw
// without replacement with softmax probabilities over the pool. One block per row sorts the row in
// shared memory, so `candidates` is bounded by the device's shared memory (16384 on an H200).
int launch_select_drops(const float* scores, int64_t rows, int64_t candidates, int64_t drops, bool sampled,
                        uint64_t seed, int64_t* slots, void* stream);

// One cache tensor compacted in place: `rows` rows, `row_stride_bytes` apart, each `entries`
// entries of `entry_bytes` contiguous bytes (any dtype: the kernel only moves bytes).
struct CompactPlane {
  void* data = nullptr;
  int64_t row_stride_bytes = 0;
  int64_t entry_bytes = 0;
};

// Drops the slots (int64 [rows, drops], ascending and distinct, each < budget) from every row of
// each of the `planes` (at most kMaxCompactPlanes, all with `rows` rows of `entries` entries):
// survivors keep their order and the later entries follow, so the first entries - drops entries
// hold the result and the last `drops` keep their old contents. A row whose slots are not
// ascending, distinct and below `budget` is left untouched and sets *bad_rows (device int32) to 1;
// `bad_rows` may be null for a caller whose slots are valid by construction or checked already.
inline constexpr int kMaxCompactPlanes = 5;
int launch_compact_entries(const CompactPlane* planes, int plane_count, int64_t rows, int64_t entries,
                           const int64_t* slots, int64_t drops, int64_t budget, int32_t* bad_rows, void* stream);

}  // namespace foresight
