// The recorder's block attention (DESIGN.md §3) in two passes over 64 x 64 tiles
// (kernels/device/attention_tiles.cuh): pass 1 gives the output and every query's log-sum-exp,
// pass 2 recomputes each key tile's probabilities against one query block at a time and writes
// that block's mean. Memory: O(L * heads) besides the inputs and the O(L * L / block) result.
#include "kernels/block_attention.cuh"

#include <climits>
#include <cmath>

#include "kernels/device/attention_tiles.cuh"

namespace foresight {

namespace {

using namespace attention_tiles;

// Pass 2. Grid (key tiles x query blocks, kv heads): blocks[kv_head, j, b] = sum over the group's
// heads h and block b's queries q of P[h, q, j] / (group * block) for the tile's keys j. A block
// that ends before the tile begins sees none of its keys and writes zeros.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    block_means_kernel(AttentionProblem<T> p, const float* lse, float* blocks, int block, int n_blocks) {
  constexpr int kParts = kThreads / kKeys;  // threads summing each key column, over rows part, part + kParts, ...
  extern __shared__ __align__(128) unsigned char smem[];
  const TileLayout<T> layout(p.dim);
  const ColumnTiles<T> tiles(smem, layout);
  float* scores = tiles.scores;

  const int b = blockIdx.x % n_blocks, k0 = blockIdx.x / n_blocks * kKeys, kv_head = blockIdx.y;
  const int n = min(kKeys, p.keys - k0);
  const int q_begin = b * block, q_end = min(p.queries, q_begin + block);
  const int column = threadIdx.x % kKeys, part = threadIdx.x / kKeys;
  float sum = 0.f;
  if (p.key_offset + q_end - 1 >= k0) {
    load_tile(tiles.k, layout.pitch, kKeys, p.k + kv_head * p.kv_head_stride + k0 * p.kv_token_stride,
              p.kv_token_stride, n, p.dim, layout.dim_pad);  // made visible by probability_tile's barrier
    for (int g = 0; g < p.group; ++g) {
      for (int q0 = q_begin; q0 < q_end; q0 += kRows) {
        const int rows = min(kRows, q_end - q0);
        if (p.key_offset + q0 + rows - 1 < k0) continue;  // no query of this tile sees the key tile
        probability_tile(p, lse, kv_head * p.group + g, q0, rows, k0, n, tiles.q, tiles.k, scores, tiles.row_lse,
                         layout);
        for (int r = part; r < rows; r += kParts) sum += scores[r * layout.kScorePitch + column];
      }
    }
  }
  __syncthreads();  // the scores are free to hold the other parts' sums
  if (part > 0) scores[(part - 1) * kKeys + column] = sum;
  __syncthreads();
  if (part == 0 && column < n) {
    for (int i = 1; i < kParts; ++i) sum += scores[(i - 1) * kKeys + column];
    const int64_t key = static_cast<int64_t>(kv_head) * p.keys + k0 + column;
    blocks[key * n_blocks + b] = sum / static_cast<float>(p.group * block);
  }
}

template <typename T>
cudaError_t launch(const void* q, const void* k, const void* v, void* out, float* blocks, float* lse, int len,
                   int heads, int kv_heads, int dim, int block, cudaStream_t stream) {
  const AttentionProblem<T> p{static_cast<const T*>(q),
                              static_cast<const T*>(k),
                              static_cast<const T*>(v),
                              /*q_token_stride=*/static_cast<int64_t>(heads) * dim,
                              /*q_head_stride=*/dim,
                              /*kv_token_stride=*/static_cast<int64_t>(kv_heads) * dim,
                              /*kv_head_stride=*/dim,
                              /*queries=*/len,
                              /*keys=*/len,
                              heads,
                              heads / kv_heads,
                              dim,
                              /*key_offset=*/0,
                              static_cast<float>(1.0 / std::sqrt(static_cast<double>(dim)))};
  const int key_tiles = (len + kKeys - 1) / kKeys, n_blocks = (len + block - 1) / block;
  if (static_cast<int64_t>(key_tiles) * n_blocks > INT_MAX) return cudaErrorInvalidValue;
  return launch_two_passes(p, static_cast<T*>(out), lse, block_means_kernel<T>, dim3(key_tiles * n_blocks, kv_heads),
                           stream, blocks, block, n_blocks);
}

}  // namespace

int launch_block_attention(ElementType type, const void* q, const void* k, const void* v, void* out, float* blocks,
                           float* lse, int64_t len, int64_t heads, int64_t kv_heads, int64_t dim, int64_t block,
                           void* stream) {
  // The op checks these with messages; here they only keep the int arithmetic and grids valid.
  if (len < 1 || len > INT_MAX / 2 || kv_heads < 1 || heads % kv_heads != 0 || heads > 65535 || kv_heads > 65535 ||
      dim < 1 || dim > kMaxDim || block < 1 || block > INT_MAX / 2) {
    return cudaErrorInvalidValue;
  }
  auto s = static_cast<cudaStream_t>(stream);
  const int l = static_cast<int>(len), h = static_cast<int>(heads), kv = static_cast<int>(kv_heads);
  const int d = static_cast<int>(dim), w = static_cast<int>(block);
  switch (type) {
    case ElementType::Float32: return launch<float>(q, k, v, out, blocks, lse, l, h, kv, d, w, s);
    case ElementType::Float16: return launch<__half>(q, k, v, out, blocks, lse, l, h, kv, d, w, s);
    case ElementType::BFloat16: return launch<__nv_bfloat16>(q, k, v, out, blocks, lse, l, h, kv, d, w, s);
  }
  return cudaErrorInvalidValue;
}

}  // namespace foresight
