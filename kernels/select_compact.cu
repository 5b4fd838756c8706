// Kernel 3 (DESIGN.md §9): choosing the W slots to drop per row, and compacting the cache in place.
// References: top_w / sample_drops (kernels/drop_selection.cpp) and compact_entries_reference
// (kernels/select_compact_op.cpp, what LayerCache::evict does on the CPU).
#include <cuda_runtime.h>
#include <curand_kernel.h>

#include <cstdint>

#include "kernels/select_compact.cuh"

namespace foresight {
namespace {

constexpr int kSelectMaxThreads = 1024;
constexpr uint64_t kPadKey = ~0ull;  // sorts after every real key
constexpr int kDefaultSharedBytes = 48 * 1024;

__host__ __device__ int next_pow2(int n) {
  int p = 1;
  while (p < n) p <<= 1;
  return p;
}

// A float's bits remapped so that unsigned order is the float order, with every NaN above +inf and
// -0 equal to +0: the order torch's sort uses, so ties and NaNs fall where top_w puts them.
__device__ uint32_t ordered_bits(float x) {
  uint32_t b = __float_as_uint(x);
  if (isnan(x)) return 0xFFFFFFFFu;
  if ((b & 0x7FFFFFFFu) == 0) b = 0;  // -0 -> +0
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

// Ascending key order = descending score, ties to the lower slot. The high half of a real key is at
// most ~ordered_bits(-inf) = 0xFF800000, so no real key equals kPadKey.
__device__ uint64_t rank_key(float score, int slot) {
  return (static_cast<uint64_t>(~ordered_bits(score)) << 32) | static_cast<uint32_t>(slot);
}

__device__ int key_slot(uint64_t key) { return static_cast<int>(key & 0xFFFFFFFFu); }

// Bitonic sort of keys[0, n) in shared memory, n a power of two; every thread of the block calls it.
__device__ void sort_ascending(uint64_t* keys, int n) {
  for (int k = 2; k <= n; k <<= 1) {
    for (int j = k >> 1; j > 0; j >>= 1) {
      __syncthreads();
      for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const int partner = i ^ j;
        if (partner > i) {
          const uint64_t a = keys[i], b = keys[partner];
          if ((a > b) == ((i & k) == 0)) {
            keys[i] = b;
            keys[partner] = a;
          }
        }
      }
    }
  }
  __syncthreads();
}

// Standard Gumbel noise for pool member `index` of `row`: one 32-bit Philox draw at offset `index`
// of subsequence `row`, so the noise does not depend on the block size.
__device__ float gumbel(uint64_t seed, int64_t row, int index) {
  curandStatePhilox4_32_10_t state;
  curand_init(seed, static_cast<unsigned long long>(row), static_cast<unsigned long long>(index), &state);
  const double u = (static_cast<double>(curand(&state)) + 0.5) * 0x1p-32;  // strictly inside (0, 1)
  return static_cast<float>(-log(-log(u)));
}

// One block per row; shared memory holds next_pow2(candidates) keys.
__global__ void select_drops_kernel(const float* scores, int candidates, int drops, bool sampled, uint64_t seed,
                                    int64_t* slots) {
  extern __shared__ uint64_t keys[];
  const int64_t row = blockIdx.x;
  const float* row_scores = scores + row * candidates;
  const int n = next_pow2(candidates);
  for (int i = threadIdx.x; i < n; i += blockDim.x) keys[i] = i < candidates ? rank_key(row_scores[i], i) : kPadKey;
  sort_ascending(keys, n);

  if (sampled) {
    // Gumbel-top-W over the top 2W: equivalent in distribution to drawing W without replacement
    // from the softmax over the pool. Each thread rewrites only the keys it reads.
    const int pool = min(2 * drops, candidates), m = next_pow2(pool);
    for (int i = threadIdx.x; i < m; i += blockDim.x) {
      if (i < pool) {
        const int slot = key_slot(keys[i]);
        keys[i] = rank_key(row_scores[slot] + gumbel(seed, row, i), slot);
      } else {
        keys[i] = kPadKey;
      }
    }
    sort_ascending(keys, m);
  }

  // keys[0, drops) are the chosen slots; sort them by slot for the ascending output.
  const int m = next_pow2(drops);
  for (int i = threadIdx.x; i < m; i += blockDim.x) keys[i] = i < drops ? key_slot(keys[i]) : kPadKey;
  sort_ascending(keys, m);
  for (int i = threadIdx.x; i < drops; i += blockDim.x) slots[row * drops + i] = static_cast<int64_t>(keys[i]);
}

// Dynamic shared memory above the default 48 KiB must be opted into, up to the device's limit.
template <typename Kernel>
cudaError_t allow_shared_bytes(Kernel kernel, int64_t bytes) {
  if (bytes <= kDefaultSharedBytes) return cudaSuccess;
  int device = 0, limit = 0;
  cudaError_t err = cudaGetDevice(&device);
  if (err == cudaSuccess) err = cudaDeviceGetAttribute(&limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
  if (err != cudaSuccess) return err;
  if (bytes > limit) return cudaErrorInvalidValue;
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
}

// --- compaction ---------------------------------------------------------------------------------

constexpr int kCompactThreads = 256;
constexpr int kItemsPerThread = 4;   // moves a thread has in flight per tile
constexpr int kUnitsPerBlock = 4;    // an entry's units one block moves; wider entries take more blocks

struct PlaneArgs {
  char* data[kMaxCompactPlanes];
  int64_t row_stride_bytes[kMaxCompactPlanes];
  int64_t units_per_entry[kMaxCompactPlanes];
  int unit_bytes[kMaxCompactPlanes];
};

// How many t[i] are <= p, for non-decreasing t[0, n).
__device__ int count_at_most(const int32_t* t, int n, int64_t p) {
  int lo = 0, hi = n;
  while (lo < hi) {
    const int mid = (lo + hi) / 2;
    if (t[mid] <= p) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

// Destination p (the p-th survivor) comes from source p + #{i : slot_i - i <= p}. Sources are never
// left of their destinations, so moving tiles of destinations in ascending order, each read
// completely before any of it is written, never overwrites a source still to be read.
template <typename Unit>
__device__ void move_entries(char* row_bytes, int64_t units_per_entry, int64_t first_col, int cols, int64_t first,
                             int64_t kept, const int32_t* shift, int drops) {
  Unit* row = reinterpret_cast<Unit*>(row_bytes);
  const int tile = kCompactThreads * kItemsPerThread / cols;  // destinations per tile
  for (int64_t p0 = first; p0 < kept; p0 += tile) {
    Unit value[kItemsPerThread];
    int64_t target[kItemsPerThread];
#pragma unroll
    for (int k = 0; k < kItemsPerThread; ++k) {
      const int item = k * kCompactThreads + static_cast<int>(threadIdx.x);
      const int64_t p = p0 + item / cols;
      target[k] = -1;
      if (item < tile * cols && p < kept) {
        const int64_t col = first_col + item % cols;
        const int64_t source = p + count_at_most(shift, drops, p);
        value[k] = row[source * units_per_entry + col];
        target[k] = p * units_per_entry + col;
      }
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < kItemsPerThread; ++k) {
      if (target[k] >= 0) row[target[k]] = value[k];
    }
    __syncthreads();
  }
}

// Block (row, column chunk, plane); shared memory holds the row's slot_i - i.
__global__ void compact_entries_kernel(PlaneArgs planes, int64_t entries, const int64_t* slots, int drops,
                                       int64_t budget, int32_t* bad_rows) {
  extern __shared__ int32_t shift[];
  __shared__ int bad;
  const int plane = blockIdx.z;
  const int64_t units = planes.units_per_entry[plane], first_col = static_cast<int64_t>(blockIdx.y) * kUnitsPerBlock;
  if (first_col >= units) return;  // this plane is narrower than the grid: the whole block leaves
  const int64_t row = blockIdx.x;
  const int64_t* row_slots = slots + row * drops;
  if (threadIdx.x == 0) bad = 0;
  __syncthreads();
  for (int i = threadIdx.x; i < drops; i += blockDim.x) {
    const int64_t slot = row_slots[i];
    if (slot < 0 || slot >= budget || (i > 0 && row_slots[i - 1] >= slot)) {
      atomicExch(&bad, 1);
    } else {
      shift[i] = static_cast<int32_t>(slot - i);
    }
  }
  __syncthreads();
  if (bad) {
    if (threadIdx.x == 0 && bad_rows != nullptr) atomicExch(bad_rows, 1);
    return;
  }
  const int cols = static_cast<int>(units - first_col < kUnitsPerBlock ? units - first_col : kUnitsPerBlock);
  char* row_bytes = planes.data[plane] + row * planes.row_stride_bytes[plane];
  const int64_t first = shift[0], kept = entries - drops;  // entries before the first drop stay put
  switch (planes.unit_bytes[plane]) {
    case 16: move_entries<uint4>(row_bytes, units, first_col, cols, first, kept, shift, drops); break;
    case 8: move_entries<uint2>(row_bytes, units, first_col, cols, first, kept, shift, drops); break;
    case 4: move_entries<uint32_t>(row_bytes, units, first_col, cols, first, kept, shift, drops); break;
    case 2: move_entries<uint16_t>(row_bytes, units, first_col, cols, first, kept, shift, drops); break;
    default: move_entries<uint8_t>(row_bytes, units, first_col, cols, first, kept, shift, drops); break;
  }
}

// The widest move (16, 8, 4, 2 or 1 bytes) that the plane's address, row stride and entry size allow.
int unit_bytes(const CompactPlane& p) {
  const auto address = reinterpret_cast<uintptr_t>(p.data);
  for (int unit = 16; unit > 1; unit /= 2) {
    if (address % unit == 0 && p.row_stride_bytes % unit == 0 && p.entry_bytes % unit == 0) return unit;
  }
  return 1;
}

}  // namespace

int launch_select_drops(const float* scores, int64_t rows, int64_t candidates, int64_t drops, bool sampled,
                        uint64_t seed, int64_t* slots, void* stream) {
  if (rows < 0 || rows > INT32_MAX || candidates < 1 || candidates > (1 << 24) || drops < 1 || drops > candidates) {
    return cudaErrorInvalidValue;
  }
  if (rows == 0) return cudaSuccess;
  const int n = next_pow2(static_cast<int>(candidates));
  const int64_t shared_bytes = static_cast<int64_t>(n) * sizeof(uint64_t);
  cudaError_t err = allow_shared_bytes(select_drops_kernel, shared_bytes);
  if (err != cudaSuccess) return err;
  const int threads = n < kSelectMaxThreads ? (n < 32 ? 32 : n) : kSelectMaxThreads;
  select_drops_kernel<<<static_cast<unsigned>(rows), threads, static_cast<size_t>(shared_bytes),
                        static_cast<cudaStream_t>(stream)>>>(scores, static_cast<int>(candidates),
                                                             static_cast<int>(drops), sampled, seed, slots);
  return cudaGetLastError();
}

int launch_compact_entries(const CompactPlane* planes, int plane_count, int64_t rows, int64_t entries,
                           const int64_t* slots, int64_t drops, int64_t budget, int32_t* bad_rows, void* stream) {
  if (plane_count < 1 || plane_count > kMaxCompactPlanes || rows < 0 || rows > INT32_MAX || entries > INT32_MAX ||
      budget > entries || drops < 1 || drops > budget) {
    return cudaErrorInvalidValue;
  }
  PlaneArgs args{};
  int64_t column_chunks = 1;
  for (int i = 0; i < plane_count; ++i) {
    if (planes[i].data == nullptr || planes[i].entry_bytes < 1) return cudaErrorInvalidValue;
    args.data[i] = static_cast<char*>(planes[i].data);
    args.row_stride_bytes[i] = planes[i].row_stride_bytes;
    args.unit_bytes[i] = unit_bytes(planes[i]);
    args.units_per_entry[i] = planes[i].entry_bytes / args.unit_bytes[i];
    const int64_t chunks = (args.units_per_entry[i] + kUnitsPerBlock - 1) / kUnitsPerBlock;
    column_chunks = chunks > column_chunks ? chunks : column_chunks;
  }
  if (column_chunks > 65535) return cudaErrorInvalidValue;
  if (rows == 0) return cudaSuccess;
  const int64_t shared_bytes = drops * static_cast<int64_t>(sizeof(int32_t));
  cudaError_t err = allow_shared_bytes(compact_entries_kernel, shared_bytes);
  if (err != cudaSuccess) return err;
  const dim3 grid(static_cast<unsigned>(rows), static_cast<unsigned>(column_chunks), static_cast<unsigned>(plane_count));
  compact_entries_kernel<<<grid, kCompactThreads, static_cast<size_t>(shared_bytes), static_cast<cudaStream_t>(stream)>>>(
      args, entries, slots, static_cast<int>(drops), budget, bad_rows);
  return cudaGetLastError();
}

}  // namespace foresight
