// The budgeted runner's chunk attention (DESIGN.md §2, §4) in two passes over 64 x 64 tiles
// (kernels/device/attention_tiles.cuh): pass 1 gives the output and every query's log-sum-exp,
// pass 2 recomputes each key tile's probabilities for one query head over all the chunk's queries
// and reduces them to that key's statistics (and, when asked, writes the probabilities).
#include "kernels/chunk_attention.cuh"

#include <climits>
#include <cmath>

#include "kernels/device/attention_tiles.cuh"

namespace foresight {

namespace {

using namespace attention_tiles;

constexpr int kParts = kThreads / kKeys;  // threads reducing each key column, over rows part, part + kParts, ...
static_assert((kParts - 1) * kChunkStatistics * kKeys <= kRows * TileLayout<float>::kScorePitch,
              "the parts' partial statistics fit in the score tile");

// Pass 2. Grid (key tiles, heads). Every query of the chunk counts, including those that see none
// of the tile's keys: the reference's masked probabilities are zeros, and they enter min and sums.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    chunk_statistics_kernel(AttentionProblem<T> p, const float* lse, float* stats, float* probs) {
  extern __shared__ __align__(128) unsigned char smem[];
  const TileLayout<T> layout(p.dim);
  const ColumnTiles<T> tiles(smem, layout);
  float* scores = tiles.scores;

  const int k0 = blockIdx.x * kKeys, n = min(kKeys, p.keys - k0), head = blockIdx.y;
  const int kv_head = head / p.group, g = head % p.group;
  const int column = threadIdx.x % kKeys, part = threadIdx.x / kKeys;
  // This thread's share of the statistics of key k0 + column, in kChunkStatistics order.
  float s[kChunkStatistics] = {-INFINITY, INFINITY, 0.f, 0.f, 0.f, 0.f};
  load_tile(tiles.k, layout.pitch, kKeys, p.k + kv_head * p.kv_head_stride + k0 * p.kv_token_stride,
            p.kv_token_stride, n, p.dim, layout.dim_pad);  // made visible by probability_tile's barrier
  for (int q0 = 0; q0 < p.queries; q0 += kRows) {
    const int rows = min(kRows, p.queries - q0);
    probability_tile(p, lse, head, q0, rows, k0, n, tiles.q, tiles.k, scores, tiles.row_lse, layout);
    for (int r = part; r < rows; r += kParts) {
      const float x = scores[r * layout.kScorePitch + column];
      const int from_end = p.queries - (q0 + r);  // 1 for the chunk's last query
      s[0] = fmaxf(s[0], x);
      s[1] = fminf(s[1], x);
      s[2] += x;
      if (from_end <= 16) s[3] += x;
      if (from_end <= 8) s[4] += x;
      if (from_end <= 32) s[5] += x;
    }
    if (probs != nullptr) {  // consecutive threads write consecutive keys of one query row
      for (int i = threadIdx.x; i < rows * kKeys; i += blockDim.x) {
        const int r = i / kKeys, c = i % kKeys;
        if (c < n) probs[(static_cast<int64_t>(head) * p.queries + q0 + r) * p.keys + k0 + c] = scores[r * layout.kScorePitch + c];
      }
    }
  }
  __syncthreads();  // the scores are free to hold the other parts' statistics
  if (part > 0) {
    for (int k = 0; k < kChunkStatistics; ++k) scores[((part - 1) * kChunkStatistics + k) * kKeys + column] = s[k];
  }
  __syncthreads();
  if (part == 0 && column < n) {
    for (int i = 1; i < kParts; ++i) {
      const float* other = scores + (i - 1) * kChunkStatistics * kKeys + column;
      s[0] = fmaxf(s[0], other[0]);
      s[1] = fminf(s[1], other[kKeys]);
      for (int k = 2; k < kChunkStatistics; ++k) s[k] += other[k * kKeys];
    }
    const int64_t plane = static_cast<int64_t>(p.heads) * p.keys;  // = kv_heads * keys * group
    const int64_t at = (static_cast<int64_t>(kv_head) * p.keys + k0 + column) * p.group + g;
    for (int k = 0; k < kChunkStatistics; ++k) stats[k * plane + at] = s[k];
  }
}

template <typename T>
cudaError_t launch(const void* q, const void* keys, const void* values, void* out, float* stats, float* probs,
                   float* lse, int queries, int key_count, int heads, int kv_heads, int dim, cudaStream_t stream) {
  const AttentionProblem<T> p{static_cast<const T*>(q),
                              static_cast<const T*>(keys),
                              static_cast<const T*>(values),
                              /*q_token_stride=*/static_cast<int64_t>(heads) * dim,
                              /*q_head_stride=*/dim,
                              /*kv_token_stride=*/dim,
                              /*kv_head_stride=*/static_cast<int64_t>(key_count) * dim,
                              queries,
                              key_count,
                              heads,
                              heads / kv_heads,
                              dim,
                              /*key_offset=*/key_count - queries,
                              static_cast<float>(1.0 / std::sqrt(static_cast<double>(dim)))};
  const int key_tiles = (key_count + kKeys - 1) / kKeys;
  return launch_two_passes(p, static_cast<T*>(out), lse, chunk_statistics_kernel<T>, dim3(key_tiles, heads), stream,
                           stats, probs);
}

}  // namespace

int launch_chunk_attention(ElementType type, const void* q, const void* keys, const void* values, void* out,
                           float* stats, float* probs, float* lse, int64_t queries, int64_t key_count, int64_t heads,
                           int64_t kv_heads, int64_t dim, void* stream) {
  // The op checks these with messages; here they only keep the int arithmetic and grids valid.
  if (queries < 1 || key_count < queries || key_count > INT_MAX / 2 || kv_heads < 1 || heads % kv_heads != 0 ||
      heads > 65535 || dim < 1 || dim > kMaxDim) {
    return cudaErrorInvalidValue;
  }
  auto s = static_cast<cudaStream_t>(stream);
  const int t = static_cast<int>(queries), n = static_cast<int>(key_count), h = static_cast<int>(heads);
  const int kv = static_cast<int>(kv_heads), d = static_cast<int>(dim);
  switch (type) {
    case ElementType::Float32: return launch<float>(q, keys, values, out, stats, probs, lse, t, n, h, kv, d, s);
    case ElementType::Float16: return launch<__half>(q, keys, values, out, stats, probs, lse, t, n, h, kv, d, s);
    case ElementType::BFloat16:
      return launch<__nv_bfloat16>(q, keys, values, out, stats, probs, lse, t, n, h, kv, d, s);
  }
  return cudaErrorInvalidValue;
}

}  // namespace foresight
