#pragma once
// Device code shared by the attention kernels (block_attention.cu, chunk_attention.cu); included
// by .cu files only. Both kernels run the same two passes over tiles of 64 queries x 64 keys:
//
//  1. rows: per query head and query tile, an online softmax over the key tiles (flash attention)
//     gives every query's output and its log-sum-exp;
//  2. columns: per key tile, the scores are recomputed and normalised with the log-sum-exp, and
//     each kernel reduces the probabilities over queries its own way (block means, statistics).
//
// A CTA of pass 2 owns its keys' results, so no atomics are needed and results are deterministic.
// The products Q K^T and P V use tensor cores (WMMA 16x16x16, float accumulation) for fp16/bf16,
// P rounded to the input type as flash attention does, and float FMA for fp32, so that fp32 keeps
// full precision. Softmax, log-sum-exp and every statistic are float32.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace foresight::attention_tiles {

constexpr int kRows = 64;      // queries per tile
constexpr int kKeys = 64;      // keys per tile
constexpr int kThreads = 128;  // four warps, one 16-row strip of the tile each
constexpr int kWarps = kThreads / 32;
constexpr int kMaxDim = 256;   // head_dim limit: the fp32 tiles of pass 1 then fill ~216 KB
static_assert(kRows == 16 * kWarps, "the WMMA paths give each warp one 16-row strip");
static_assert(kKeys % 32 == 0 && kThreads % kKeys == 0, "lanes and threads tile the key columns evenly");

template <typename T>
constexpr bool kTensorCores = !std::is_same_v<T, float>;

template <typename T>
__device__ T from_float(float x);
template <>
__device__ inline float from_float<float>(float x) { return x; }
template <>
__device__ inline __half from_float<__half>(float x) { return __float2half_rn(x); }
template <>
__device__ inline __nv_bfloat16 from_float<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

__device__ inline float warp_max(float x) {
  for (int offset = 16; offset > 0; offset /= 2) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, offset));
  return x;
}

__device__ inline float warp_sum(float x) {
  for (int offset = 16; offset > 0; offset /= 2) x += __shfl_xor_sync(0xffffffffu, x, offset);
  return x;
}

__host__ __device__ constexpr std::size_t align128(std::size_t bytes) { return (bytes + 127) / 128 * 128; }

// Where each tile lives in dynamic shared memory, computed from head_dim on host and device alike.
// Rows of Q/K/V are padded to a multiple of 16 (a WMMA step) and skewed so that successive rows
// start on different banks: +8 elements for WMMA (whose pitch must be a multiple of 8 halves), +1
// float for the FMA path (an odd pitch keeps lanes that read different keys conflict-free).
// Every buffer starts 128-byte aligned, as WMMA loads need 32.
template <typename T>
struct TileLayout {
  static constexpr int kScorePitch = kKeys + 4;  // float
  static constexpr int kProbPitch = kKeys + 8;   // T, tensor-core path only
  int dim_pad, pitch, acc_pitch;
  std::size_t q, kv, scores, row_a, row_b, probs, acc;
  std::size_t column_pass_bytes;  // Q, K, scores and one float per row
  std::size_t row_pass_bytes;     // plus the T probabilities and the float output accumulator

  __host__ __device__ explicit TileLayout(int head_dim)
      : dim_pad((head_dim + 15) / 16 * 16), pitch(dim_pad + (kTensorCores<T> ? 8 : 1)), acc_pitch(dim_pad + 4) {
    q = 0;
    kv = align128(q + sizeof(T) * kRows * pitch);
    scores = align128(kv + sizeof(T) * kKeys * pitch);
    row_a = align128(scores + sizeof(float) * kRows * kScorePitch);
    row_b = row_a + sizeof(float) * kRows;
    column_pass_bytes = align128(row_b + sizeof(float) * kRows);
    probs = column_pass_bytes;
    acc = align128(probs + (kTensorCores<T> ? sizeof(T) * kRows * kProbPitch : 0));
    row_pass_bytes = acc + sizeof(float) * kRows * acc_pitch;
  }
};

// Copies `rows` rows of `dim` elements (row r at src + r * stride) into a tile of `tile_rows` rows,
// zero-filling the padding rows and columns so that they add nothing to any dot product.
template <typename T>
__device__ void load_tile(T* tile, int pitch, int tile_rows, const T* src, int64_t stride, int rows, int dim,
                          int dim_pad) {
  for (int i = threadIdx.x; i < tile_rows * dim_pad; i += blockDim.x) {
    const int r = i / dim_pad, c = i % dim_pad;
    tile[r * pitch + c] = r < rows && c < dim ? src[r * stride + c] : from_float<T>(0.f);
  }
}

// scores[r][c] = q[r] . keys[c] over the padded head_dim, for the whole kRows x kKeys tile.
template <typename T>
__device__ void score_tile(const T* q, const T* keys, float* scores, const TileLayout<T>& layout) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if constexpr (kTensorCores<T>) {
    using namespace nvcuda;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[kKeys / 16];
    for (auto& a : acc) wmma::fill_fragment(a, 0.f);
    for (int k = 0; k < layout.dim_pad; k += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
      wmma::load_matrix_sync(a, q + warp * 16 * layout.pitch + k, layout.pitch);
      for (int n = 0; n < kKeys / 16; ++n) {
        // K stored row-major [key][dim] is K^T in column-major order: the B operand as is.
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> b;
        wmma::load_matrix_sync(b, keys + n * 16 * layout.pitch + k, layout.pitch);
        wmma::mma_sync(acc[n], a, b, acc[n]);
      }
    }
    for (int n = 0; n < kKeys / 16; ++n) {
      wmma::store_matrix_sync(scores + warp * 16 * layout.kScorePitch + n * 16, acc[n], layout.kScorePitch,
                              wmma::mem_row_major);
    }
  } else {
    // Lanes take different keys of one query row: the query element is a broadcast.
    for (int r = warp; r < kRows; r += kWarps) {
      for (int c = lane; c < kKeys; c += 32) {
        float dot = 0.f;
        for (int k = 0; k < layout.dim_pad; ++k) dot = fmaf(q[r * layout.pitch + k], keys[c * layout.pitch + k], dot);
        scores[r * layout.kScorePitch + c] = dot;
      }
    }
  }
}

// acc[r][:] += sum over the tile's keys j of p[r][j] * values[j][:]. The tensor-core path reads the
// probabilities in T (`probs`), the FMA path in float (`scores`, overwritten with them).
template <typename T>
__device__ void accumulate_values(const float* scores, const T* probs, const T* values, float* acc,
                                  const TileLayout<T>& layout) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if constexpr (kTensorCores<T>) {
    using namespace nvcuda;
    for (int n = 0; n < layout.dim_pad; n += 16) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> c;
      float* out = acc + warp * 16 * layout.acc_pitch + n;
      wmma::load_matrix_sync(c, out, layout.acc_pitch, wmma::mem_row_major);
      for (int k = 0; k < kKeys; k += 16) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> b;
        wmma::load_matrix_sync(a, probs + warp * 16 * layout.kProbPitch + k, layout.kProbPitch);
        wmma::load_matrix_sync(b, values + k * layout.pitch + n, layout.pitch);
        wmma::mma_sync(c, a, b, c);
      }
      wmma::store_matrix_sync(out, c, layout.acc_pitch, wmma::mem_row_major);
    }
  } else {
    for (int r = warp; r < kRows; r += kWarps) {
      for (int n = lane; n < layout.dim_pad; n += 32) {
        float sum = acc[r * layout.acc_pitch + n];
        for (int j = 0; j < kKeys; ++j) sum = fmaf(scores[r * layout.kScorePitch + j], values[j * layout.pitch + n], sum);
        acc[r * layout.acc_pitch + n] = sum;
      }
    }
  }
}

// One attention problem as both kernels see it: `queries` queries of `heads` heads over `keys`
// keys of `kv_heads` heads (query head h reads KV head h / group); query i sits at key position
// key_offset + i and sees keys 0..key_offset + i. Element c of query i, head h is
// q[i * q_token_stride + h * q_head_stride + c], and likewise for k, v (sharing strides) and out.
template <typename T>
struct AttentionProblem {
  const T* q;
  const T* k;
  const T* v;
  int64_t q_token_stride, q_head_stride, kv_token_stride, kv_head_stride;
  int queries, keys, heads, group, dim, key_offset;
  float scale;  // 1 / sqrt(head_dim)
};

// Pass 1. Grid (query tiles, heads); out has q's layout; lse is float [heads, queries].
template <typename T>
__global__ void __launch_bounds__(kThreads) attention_rows_kernel(AttentionProblem<T> p, T* out, float* lse) {
  extern __shared__ __align__(128) unsigned char smem[];
  const TileLayout<T> layout(p.dim);
  T* q_tile = reinterpret_cast<T*>(smem + layout.q);
  T* kv_tile = reinterpret_cast<T*>(smem + layout.kv);
  float* scores = reinterpret_cast<float*>(smem + layout.scores);
  float* row_max = reinterpret_cast<float*>(smem + layout.row_a);
  float* row_sum = reinterpret_cast<float*>(smem + layout.row_b);
  T* probs = reinterpret_cast<T*>(smem + layout.probs);
  float* acc = reinterpret_cast<float*>(smem + layout.acc);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;

  const int tile = gridDim.x - 1 - blockIdx.x;  // the tiles with the most keys start first
  const int head = blockIdx.y, kv_head = head / p.group;
  const int q0 = tile * kRows, rows = min(kRows, p.queries - q0);
  load_tile(q_tile, layout.pitch, kRows, p.q + q0 * p.q_token_stride + head * p.q_head_stride, p.q_token_stride,
            rows, p.dim, layout.dim_pad);
  for (int r = threadIdx.x; r < kRows; r += blockDim.x) {
    row_max[r] = -INFINITY;
    row_sum[r] = 0.f;
  }
  for (int i = threadIdx.x; i < kRows * layout.acc_pitch; i += blockDim.x) acc[i] = 0.f;

  const int64_t kv_base = static_cast<int64_t>(kv_head) * p.kv_head_stride;
  const int key_end = min(p.keys, p.key_offset + q0 + rows);  // one past the last key the tile sees
  for (int k0 = 0; k0 < key_end; k0 += kKeys) {
    const int n = min(kKeys, key_end - k0);
    load_tile(kv_tile, layout.pitch, kKeys, p.k + kv_base + k0 * p.kv_token_stride, p.kv_token_stride, n, p.dim,
              layout.dim_pad);
    __syncthreads();  // Q, K and the row state are in place
    score_tile(q_tile, kv_tile, scores, layout);
    __syncthreads();  // scores complete, K no longer read
    load_tile(kv_tile, layout.pitch, kKeys, p.v + kv_base + k0 * p.kv_token_stride, p.kv_token_stride, n, p.dim,
              layout.dim_pad);
    // Online softmax, one warp per row: rescale the row's running sum and output by
    // exp(old max - new max), then add this tile's exp(score - new max).
    for (int r = warp; r < kRows; r += kWarps) {
      const int seen = r < rows ? min(n, p.key_offset + q0 + r - k0 + 1) : 0;  // visible keys of the tile
      const float old_max = row_max[r], old_sum = row_sum[r];
      float s[kKeys / 32];
      float tile_max = -INFINITY;
      for (int i = 0; i < kKeys / 32; ++i) {
        const int c = lane + 32 * i;
        s[i] = c < seen ? scores[r * layout.kScorePitch + c] * p.scale : -INFINITY;
        tile_max = fmaxf(tile_max, s[i]);
      }
      const float new_max = fmaxf(old_max, warp_max(tile_max));
      // A row that has seen no key yet (only padding rows: key 0 is in every row's first tile)
      // has nothing to rescale; exp(-inf - -inf) would be NaN.
      const float alpha = old_max == -INFINITY ? 0.f : expf(old_max - new_max);
      float tile_sum = 0.f;
      for (int i = 0; i < kKeys / 32; ++i) {
        const int c = lane + 32 * i;
        const float prob = c < seen ? expf(s[i] - new_max) : 0.f;
        tile_sum += prob;
        scores[r * layout.kScorePitch + c] = prob;
        if constexpr (kTensorCores<T>) probs[r * layout.kProbPitch + c] = from_float<T>(prob);
      }
      tile_sum = warp_sum(tile_sum);
      for (int c = lane; c < layout.dim_pad; c += 32) acc[r * layout.acc_pitch + c] *= alpha;
      __syncwarp();  // every lane has read the old row state
      if (lane == 0) {
        row_max[r] = new_max;
        row_sum[r] = old_sum * alpha + tile_sum;
      }
    }
    __syncthreads();  // probabilities, rescaled outputs and V are in place
    accumulate_values(scores, probs, kv_tile, acc, layout);
    __syncthreads();  // the next tile may overwrite K/V and the scores
  }

  const int64_t out_row = p.q_token_stride;  // out shares q's layout
  for (int i = threadIdx.x; i < rows * p.dim; i += blockDim.x) {
    const int r = i / p.dim, c = i % p.dim;
    out[(q0 + r) * out_row + head * p.q_head_stride + c] = from_float<T>(acc[r * layout.acc_pitch + c] / row_sum[r]);
  }
  for (int r = threadIdx.x; r < rows; r += blockDim.x) {
    lse[static_cast<int64_t>(head) * p.queries + q0 + r] = row_max[r] + logf(row_sum[r]);
  }
}

// Pass 2's common start: the normalised probabilities of one head's queries q0..q0+rows-1 on the
// key tile already in kv_tile. Loads the queries and their log-sum-exps, scores the tile and
// leaves exp(score - lse) in `scores` for the visible (query, key) pairs and 0 elsewhere; `n` is
// the number of real keys in the tile starting at key k0. Ends with the scores readable by all.
template <typename T>
__device__ void probability_tile(const AttentionProblem<T>& p, const float* lse, int head, int q0, int rows, int k0,
                                 int n, T* q_tile, const T* kv_tile, float* scores, float* row_lse,
                                 const TileLayout<T>& layout) {
  __syncthreads();  // the previous tile's readers are done with Q, the scores and row_lse
  load_tile(q_tile, layout.pitch, kRows, p.q + q0 * p.q_token_stride + head * p.q_head_stride, p.q_token_stride, rows,
            p.dim, layout.dim_pad);
  for (int r = threadIdx.x; r < rows; r += blockDim.x) row_lse[r] = lse[static_cast<int64_t>(head) * p.queries + q0 + r];
  __syncthreads();
  score_tile(q_tile, kv_tile, scores, layout);
  __syncthreads();
  for (int i = threadIdx.x; i < kRows * kKeys; i += blockDim.x) {
    const int r = i / kKeys, c = i % kKeys;
    const bool seen = r < rows && c < n && k0 + c <= p.key_offset + q0 + r;
    float& s = scores[r * layout.kScorePitch + c];
    s = seen ? expf(s * p.scale - row_lse[r]) : 0.f;
  }
  __syncthreads();
}

// Opts the kernel in to `bytes` of dynamic shared memory on the current device.
template <typename Kernel>
cudaError_t allow_shared_memory(Kernel kernel, std::size_t bytes) {
  int device = 0, limit = 0;
  cudaError_t e = cudaGetDevice(&device);
  if (e != cudaSuccess) return e;
  e = cudaDeviceGetAttribute(&limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
  if (e != cudaSuccess) return e;
  if (bytes > static_cast<std::size_t>(limit)) return cudaErrorInvalidValue;
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
}

// The buffers of pass 2 in dynamic shared memory.
template <typename T>
struct ColumnTiles {
  T* q;
  T* k;
  float* scores;
  float* row_lse;

  __device__ ColumnTiles(unsigned char* smem, const TileLayout<T>& layout)
      : q(reinterpret_cast<T*>(smem + layout.q)),
        k(reinterpret_cast<T*>(smem + layout.kv)),
        scores(reinterpret_cast<float*>(smem + layout.scores)),
        row_lse(reinterpret_cast<float*>(smem + layout.row_a)) {}
};

// Both passes on `stream`: pass 1 over (query tiles, heads), then the kernel's own pass 2,
// `columns(p, lse, args...)` over the grid `column_grid`, once each may use its shared memory.
template <typename T, typename... Args>
cudaError_t launch_two_passes(const AttentionProblem<T>& p, T* out, float* lse,
                              void (*columns)(AttentionProblem<T>, const float*, Args...), dim3 column_grid,
                              cudaStream_t stream, Args... args) {
  const TileLayout<T> layout(p.dim);
  cudaError_t e = allow_shared_memory(attention_rows_kernel<T>, layout.row_pass_bytes);
  if (e != cudaSuccess) return e;
  e = allow_shared_memory(columns, layout.column_pass_bytes);
  if (e != cudaSuccess) return e;
  const int query_tiles = (p.queries + kRows - 1) / kRows;
  attention_rows_kernel<T><<<dim3(query_tiles, p.heads), kThreads, layout.row_pass_bytes, stream>>>(p, out, lse);
  columns<<<column_grid, kThreads, layout.column_pass_bytes, stream>>>(p, lse, args...);
  return cudaGetLastError();
}

}  // namespace foresight::attention_tiles
