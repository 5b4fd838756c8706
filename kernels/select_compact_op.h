#pragma once
// Kernel 3's LibTorch layer: which W slots to drop, and dropping them from the cache in place.
// CPU tensors run the references below; CUDA tensors run kernels/select_compact.cu.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>

namespace foresight {

// One layer's cache entries; each row is a (rollout, KV head) pair, all rows hold S entries.
struct CacheEntries {
  at::Tensor keys, values;    // [R, S, d], bf16/fp16/fp32, one dtype
  at::Tensor cum, cum_decay;  // float32 [R, S, G]
  at::Tensor positions;       // int64 [R, S]
};

// The `w` slots to drop per row of scores [R, B] (bf16/fp16/fp32), int64 [R, w], ascending.
// Without a seed: the w highest scores, ties to the lower slot (top_w). With one: the sampled rule
// of DESIGN.md §6, w drawn without replacement from the softmax over the 2w highest. On the CPU
// that is sample_w with a CPU generator seeded by `sample_seed`; on CUDA it is Gumbel-top-w with
// Philox noise: the same distribution from another stream, so the drops differ between devices.
// Vary the seed from call to call.
at::Tensor select_drops(const at::Tensor& scores, int64_t w, std::optional<uint64_t> sample_seed);

// Drops `slots` (int64 [R, W], distinct, each < budget, any order) of the first `budget` entries
// of every row, in place: survivors keep their order and the later entries follow, so the first
// S - W entries of each row hold the result and the last W keep their old contents.
void compact_entries(const CacheEntries& entries, const at::Tensor& slots, int64_t budget);

// select_drops on scores [R, B], then compact_entries with budget B; returns the slots.
at::Tensor select_compact(const at::Tensor& scores, int64_t w, std::optional<uint64_t> sample_seed,
                          const CacheEntries& entries);

// The references, plain LibTorch ops on any device: the ground truth of the tests and the
// "libtorch ops" row of the benchmark. compact_entries_reference is what LayerCache::evict did
// before the kernel: a gather of the survivors, written back over the first S - W entries.
at::Tensor select_drops_reference(const at::Tensor& scores, int64_t w, std::optional<uint64_t> sample_seed);
void compact_entries_reference(const CacheEntries& entries, const at::Tensor& slots, int64_t budget);

}  // namespace foresight
