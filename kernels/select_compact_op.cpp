#include "kernels/select_compact_op.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/MemoryOverlap.h>

#include <array>
#include <string>

#include "kernels/drop_selection.h"

#ifdef FORESIGHT_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>

#include "kernels/select_compact.cuh"
#endif

namespace foresight {

namespace {

bool is_compute_dtype(at::ScalarType t) { return t == at::kFloat || t == at::kBFloat16 || t == at::kHalf; }

void check_device(const at::Tensor& t, const char* op) {
  TORCH_CHECK(t.is_cpu() || t.is_cuda(), op, ": tensors must be on the CPU or a CUDA device, got ", t.device());
#ifndef FORESIGHT_WITH_CUDA
  TORCH_CHECK(t.is_cpu(), op, ": this build has no CUDA kernels (nvcc or a CUDA-enabled torch was missing at configure "
              "time); use CPU tensors");
#endif
}

void check_scores(const at::Tensor& scores, int64_t w) {
  TORCH_CHECK(scores.defined() && scores.dim() == 2, "select_drops: scores must be [R, B], got ",
              scores.defined() ? scores.sizes() : at::IntArrayRef{});
  TORCH_CHECK(is_compute_dtype(scores.scalar_type()), "select_drops: scores must be float32, bfloat16 or float16, got ",
              scores.scalar_type());
  TORCH_CHECK(1 <= w && w <= scores.size(1), "select_drops: w must be in [1, B = ", scores.size(1), "], got ", w);
  check_device(scores, "select_drops");
}

// Shapes, dtypes and devices of the cache tensors, which must be separate memory (they are
// compacted in place).
void check_entries(const CacheEntries& e, const char* op) {
  for (const at::Tensor* t : {&e.keys, &e.values, &e.cum, &e.cum_decay, &e.positions}) {
    TORCH_CHECK(t->defined(), op, ": keys, values, cum, cum_decay and positions must all be given");
  }
  TORCH_CHECK(e.positions.dim() == 2 && e.positions.scalar_type() == at::kLong, op,
              ": positions must be int64 [R, S], got ", e.positions.scalar_type(), " ", e.positions.sizes());
  const int64_t rows = e.positions.size(0), entries = e.positions.size(1);
  TORCH_CHECK(e.keys.dim() == 3 && e.keys.size(0) == rows && e.keys.size(1) == entries, op,
              ": keys must be [R, S, d] = [", rows, ", ", entries, ", d], got ", e.keys.sizes());
  TORCH_CHECK(e.values.sizes() == e.keys.sizes(), op, ": values must have the keys' shape ", e.keys.sizes(), ", got ",
              e.values.sizes());
  TORCH_CHECK(is_compute_dtype(e.keys.scalar_type()) && e.values.scalar_type() == e.keys.scalar_type(), op,
              ": keys and values must share one dtype of float32, bfloat16 or float16, got ", e.keys.scalar_type(),
              " and ", e.values.scalar_type());
  for (const at::Tensor* t : {&e.cum, &e.cum_decay}) {
    TORCH_CHECK(t->dim() == 3 && t->size(0) == rows && t->size(1) == entries && t->sizes() == e.cum.sizes() &&
                    t->scalar_type() == at::kFloat,
                op, ": cum and cum_decay must be float32 [R, S, G] = [", rows, ", ", entries, ", G], got ",
                t->scalar_type(), " ", t->sizes());
  }
  const std::array<const at::Tensor*, 5> cache = {&e.keys, &e.values, &e.cum, &e.cum_decay, &e.positions};
  for (std::size_t i = 0; i < cache.size(); ++i) {
    check_device(*cache[i], op);
    TORCH_CHECK(cache[i]->device() == e.positions.device(), op, ": the cache tensors must be on one device, got ",
                cache[i]->device(), " and ", e.positions.device());
    TORCH_CHECK(at::has_internal_overlap(*cache[i]) != at::MemOverlap::Yes, op,
                ": a cache tensor is compacted in place, so it must not be expanded or otherwise self-overlapping");
    for (std::size_t j = 0; j < i; ++j) {
      // Views of one storage must provably not overlap; torch cannot tell for strided ones, so they are refused.
      const bool shared = cache[i]->storage().is_alias_of(cache[j]->storage()) &&
                          at::get_overlap_status(*cache[i], *cache[j]) != at::MemOverlapStatus::No;
      TORCH_CHECK(!shared, op, ": keys, values, cum, cum_decay and positions must not share memory");
    }
  }
}

// The drops of each row, [R, w], fit the cache: 1 <= w <= budget <= S, on the cache's device.
void check_drop_shape(const CacheEntries& e, int64_t rows, int64_t w, int64_t budget, const at::Device& device,
                      const char* op) {
  TORCH_CHECK(rows == e.positions.size(0), op, ": ", rows, " rows of drops for a cache of ", e.positions.size(0));
  TORCH_CHECK(1 <= w && w <= budget && budget <= e.positions.size(1), op,
              ": need 1 <= W <= budget <= S, got W ", w, ", budget ", budget, ", S ", e.positions.size(1));
  TORCH_CHECK(device == e.positions.device(), op, ": the drops are on ", device, ", the cache on ",
              e.positions.device());
}

// The slots sorted per row, after checking that they are distinct and below `budget` (one read
// back to the host).
at::Tensor sorted_valid_slots(const at::Tensor& slots, int64_t budget) {
  const at::Tensor sorted = std::get<0>(slots.sort(1));
  const at::Tensor ok = (sorted.select(1, 0) >= 0).all() & (sorted.select(1, -1) < budget).all() &
                        (sorted.slice(1, 1) > sorted.slice(1, 0, -1)).all();
  TORCH_CHECK(ok.item<bool>(), "compact_entries: slots must be distinct and in [0, budget = ", budget,
              ") in every row");
  return sorted;
}

#ifdef FORESIGHT_WITH_CUDA
void check_launch(int err, const std::string& what) {
  TORCH_CHECK(err == cudaSuccess, what, " failed: ", cudaGetErrorString(static_cast<cudaError_t>(err)));
}

cudaStream_t current_stream(const at::Device& device) { return c10::cuda::getCurrentCUDAStream(device.index()).stream(); }

at::Tensor select_drops_cuda(const at::Tensor& scores, int64_t w, std::optional<uint64_t> sample_seed) {
  const c10::cuda::CUDAGuard guard(scores.device());
  const at::Tensor dense = scores.to(at::kFloat).contiguous();  // the widening keeps the order exactly
  at::Tensor slots = at::empty({scores.size(0), w}, scores.options().dtype(at::kLong));
  check_launch(launch_select_drops(dense.data_ptr<float>(), dense.size(0), dense.size(1), w, sample_seed.has_value(),
                                   sample_seed.value_or(0), slots.data_ptr<int64_t>(), current_stream(scores.device())),
               "select_drops kernel (one block sorts a row of B = " + std::to_string(dense.size(1)) +
                   " scores in shared memory, 8 bytes each, rounded up to a power of two)");
  return slots;
}

// The kernel moves each row's entries as bytes; it needs them contiguous within a row and rows that
// do not overlap (a narrowed cache qualifies). Other layouts are compacted in a dense copy and
// copied back.
bool rows_are_dense(const at::Tensor& t) {
  const int64_t entry = t.dim() == 3 ? t.size(2) : 1;
  return (t.dim() == 2 || t.stride(2) == 1 || t.size(2) == 1) && (t.stride(1) == entry || t.size(1) == 1) &&
         (t.size(0) == 1 || t.stride(0) >= t.size(1) * entry);  // rows apart, so blocks never share bytes
}

// `sorted_slots`: ascending and valid in every row (the kernel leaves any other row untouched).
void compact_entries_cuda(const CacheEntries& e, const at::Tensor& sorted_slots, int64_t budget) {
  const c10::cuda::CUDAGuard guard(e.positions.device());
  const std::array<at::Tensor, 5> cache = {e.keys, e.values, e.cum, e.cum_decay, e.positions};
  std::array<at::Tensor, 5> work;
  std::array<CompactPlane, 5> planes;
  for (std::size_t i = 0; i < cache.size(); ++i) {
    work[i] = rows_are_dense(cache[i]) ? cache[i] : cache[i].contiguous();
    const int64_t item = work[i].element_size(), entry = work[i].dim() == 3 ? work[i].size(2) : 1;
    planes[i] = {work[i].data_ptr(), work[i].stride(0) * item, entry * item};
  }
  const at::Tensor slots = sorted_slots.contiguous();
  check_launch(launch_compact_entries(planes.data(), static_cast<int>(planes.size()), e.positions.size(0),
                                      e.positions.size(1), slots.data_ptr<int64_t>(), slots.size(1), budget,
                                      /*bad_rows=*/nullptr,  // the slots are valid: no flag, no read-back
                                      current_stream(e.positions.device())),
               "compact_entries kernel");
  for (std::size_t i = 0; i < cache.size(); ++i) {
    if (!work[i].is_same(cache[i])) cache[i].copy_(work[i]);
  }
}
#endif

}  // namespace

at::Tensor select_drops_reference(const at::Tensor& scores, int64_t w, std::optional<uint64_t> sample_seed) {
  if (!sample_seed) return top_w(scores, w);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(*sample_seed);
  return sample_w(scores, w, gen);
}

void compact_entries_reference(const CacheEntries& e, const at::Tensor& slots, int64_t budget) {
  const int64_t rows = e.positions.size(0), s = e.positions.size(1), w = slots.size(1);
  at::Tensor keep = at::ones({rows, s}, e.positions.options().dtype(at::kBool));
  keep.slice(1, 0, budget).scatter_(1, slots, false);
  const at::Tensor index = at::arange(s, e.positions.options()).expand({rows, s}).masked_select(keep).view({rows, s - w});
  for (const at::Tensor* x : {&e.keys, &e.values, &e.cum, &e.cum_decay}) {
    x->narrow(1, 0, s - w).copy_(x->gather(1, index.unsqueeze(-1).expand({rows, s - w, x->size(2)})));
  }
  e.positions.narrow(1, 0, s - w).copy_(e.positions.gather(1, index));
}

at::Tensor select_drops(const at::Tensor& scores, int64_t w, std::optional<uint64_t> sample_seed) {
  check_scores(scores, w);
#ifdef FORESIGHT_WITH_CUDA
  if (scores.is_cuda()) return select_drops_cuda(scores, w, sample_seed);
#endif
  return select_drops_reference(scores, w, sample_seed);
}

void compact_entries(const CacheEntries& entries, const at::Tensor& slots, int64_t budget) {
  const char* op = "compact_entries";
  check_entries(entries, op);
  TORCH_CHECK(slots.defined() && slots.dim() == 2 && slots.scalar_type() == at::kLong, op,
              ": slots must be int64 [R, W], got ", slots.defined() ? slots.scalar_type() : at::ScalarType::Undefined,
              " ", slots.defined() ? slots.sizes() : at::IntArrayRef{});
  check_drop_shape(entries, slots.size(0), slots.size(1), budget, slots.device(), op);
  const at::Tensor sorted = sorted_valid_slots(slots, budget);
#ifdef FORESIGHT_WITH_CUDA
  if (slots.is_cuda()) return compact_entries_cuda(entries, sorted, budget);
#endif
  compact_entries_reference(entries, sorted, budget);
}

at::Tensor select_compact(const at::Tensor& scores, int64_t w, std::optional<uint64_t> sample_seed,
                          const CacheEntries& entries) {
  const char* op = "select_compact";
  check_scores(scores, w);
  check_entries(entries, op);
  const int64_t budget = scores.size(1);
  check_drop_shape(entries, scores.size(0), w, budget, scores.device(), op);
  const at::Tensor slots = select_drops(scores, w, sample_seed);  // ascending and valid by construction
#ifdef FORESIGHT_WITH_CUDA
  if (scores.is_cuda()) {
    compact_entries_cuda(entries, slots, budget);
    return slots;
  }
#endif
  compact_entries_reference(entries, slots, budget);
  return slots;
}

}  // namespace foresight
