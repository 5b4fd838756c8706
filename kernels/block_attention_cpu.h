#pragma once
#include <ATen/core/Tensor.h>

namespace foresight {

// Tile sizes of the recorder. Scores live only one [query_tile x key_tile] tile per head at a
// time, so memory is O(query_tile * key_tile) plus the O(L * L / W) result.
struct RecorderTiles {
  int64_t query_tile = 1024;  // rounded up to a multiple of the block size
  int64_t key_tile = 1024;
};

struct BlockAttention {
  at::Tensor output;  // [L, H, d], q's dtype: the layer's ordinary causal attention output
  at::Tensor blocks;  // float32 [Hkv, L, ceil(L / block)]: A of DESIGN.md §3, key-major
};

// Causal self-attention over one whole sequence (q [L, H, d], k and v [L, Hkv, d]) that also
// records A[k, j, b] = mean over the G query heads of group k and over the `block` query slots of
// block b of P[h, q, j]; the last block is padded with zero rows, so its sum is divided by `block`
// too. Per query tile, two passes over key tiles: row log-sum-exp, then the normalised
// probabilities, which feed both the block sums and the output. Float32 throughout.
BlockAttention block_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                               int64_t block, const RecorderTiles& tiles);

// The reference: the full [H, L, L] softmax, as the authors' Python code computes it. O(L^2)
// memory; for tests and benchmarks only.
BlockAttention block_attention_reference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                         int64_t block);

}  // namespace foresight
