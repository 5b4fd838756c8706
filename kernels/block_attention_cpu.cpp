#include "kernels/block_attention_cpu.h"

#include <ATen/ATen.h>

#include <cmath>
#include <limits>

namespace foresight {

namespace {

// [L, H, d] -> float32 [Hkv, G, L, d]; query head h belongs to KV head h / G (HF's repeat_kv).
at::Tensor grouped_queries(const at::Tensor& q, int64_t kv_heads) {
  const int64_t l = q.size(0), h = q.size(1), d = q.size(2);
  return q.to(at::kFloat).permute({1, 0, 2}).reshape({kv_heads, h / kv_heads, l, d});
}

// Sums probabilities [Hkv, G, T, S] over the group and over the `block` query rows of each block
// (T padded to whole blocks with zero rows) and divides by G * block: [Hkv, S, T / block].
at::Tensor block_means(const at::Tensor& probs, int64_t block) {
  const int64_t kv = probs.size(0), g = probs.size(1), t = probs.size(2), s = probs.size(3);
  const int64_t n = (t + block - 1) / block;
  at::Tensor per_query = probs.sum(1);  // [Hkv, T, S]
  if (n * block != t) per_query = at::constant_pad_nd(per_query, {0, 0, 0, n * block - t});
  return per_query.view({kv, n, block, s}).sum(2).transpose(1, 2) / static_cast<double>(g * block);
}

}  // namespace

BlockAttention block_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                               int64_t block, const RecorderTiles& tiles) {
  const int64_t len = q.size(0), heads = q.size(1), dim = q.size(2), kv_heads = k.size(1);
  const int64_t n_blocks = (len + block - 1) / block;
  const int64_t query_tile = std::max<int64_t>(1, (tiles.query_tile + block - 1) / block) * block;
  const int64_t key_tile = tiles.key_tile;
  const auto f32 = at::TensorOptions().dtype(at::kFloat).device(q.device());
  const auto i64 = at::TensorOptions().dtype(at::kLong).device(q.device());

  const at::Tensor qg = grouped_queries(q, kv_heads) * (1.0 / std::sqrt(static_cast<double>(dim)));
  const at::Tensor kf = k.to(at::kFloat).permute({1, 0, 2}).unsqueeze(1);  // [Hkv, 1, L, d]
  const at::Tensor vf = v.to(at::kFloat).permute({1, 0, 2}).unsqueeze(1);
  at::Tensor out = at::empty(qg.sizes(), f32);
  at::Tensor blocks = at::zeros({kv_heads, len, n_blocks}, f32);

  for (int64_t q0 = 0; q0 < len; q0 += query_tile) {
    const int64_t q1 = std::min(len, q0 + query_tile);
    const at::Tensor qs = qg.slice(2, q0, q1);
    const at::Tensor query_pos = at::arange(q0, q1, i64).unsqueeze(1);
    // Scores of this query tile against keys [k0, k1); keys after a query are masked out.
    auto scores = [&](int64_t k0, int64_t k1) {
      at::Tensor s = at::matmul(qs, kf.slice(2, k0, k1).transpose(2, 3));
      if (k1 - 1 > q0) {
        s.masked_fill_(at::arange(k0, k1, i64).unsqueeze(0) > query_pos, -std::numeric_limits<float>::infinity());
      }
      return s;
    };
    // Pass 1: every query's log-sum-exp over all its keys. The first key tile always holds key 0,
    // so the running value is finite from then on.
    at::Tensor lse = at::full({kv_heads, qs.size(1), q1 - q0}, -std::numeric_limits<float>::infinity(), f32);
    for (int64_t k0 = 0; k0 < q1; k0 += key_tile) {
      lse = at::logaddexp(lse, at::logsumexp(scores(k0, std::min(q1, k0 + key_tile)), -1));
    }
    // Pass 2: normalised probabilities, tile by tile, into the output and the block means.
    at::Tensor acc = at::zeros({kv_heads, qs.size(1), q1 - q0, dim}, f32);
    const int64_t b0 = q0 / block;
    for (int64_t k0 = 0; k0 < q1; k0 += key_tile) {
      const int64_t k1 = std::min(q1, k0 + key_tile);
      const at::Tensor p = at::exp(scores(k0, k1) - lse.unsqueeze(-1));
      acc.add_(at::matmul(p, vf.slice(2, k0, k1)));
      const at::Tensor means = block_means(p, block);
      blocks.slice(1, k0, k1).slice(2, b0, b0 + means.size(2)).add_(means);
    }
    out.slice(2, q0, q1).copy_(acc);
  }
  return {out.reshape({heads, len, dim}).permute({1, 0, 2}).to(q.scalar_type()), blocks};
}

BlockAttention block_attention_reference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                         int64_t block) {
  const int64_t len = q.size(0), heads = q.size(1), dim = q.size(2), kv_heads = k.size(1);
  const at::Tensor qg = grouped_queries(q, kv_heads);
  const at::Tensor kf = k.to(at::kFloat).permute({1, 0, 2}).unsqueeze(1);
  const at::Tensor vf = v.to(at::kFloat).permute({1, 0, 2}).unsqueeze(1);
  at::Tensor scores = at::matmul(qg, kf.transpose(2, 3)) / std::sqrt(static_cast<double>(dim));
  const at::Tensor future = at::ones({len, len}, at::TensorOptions().dtype(at::kBool).device(q.device())).triu(1);
  scores.masked_fill_(future, -std::numeric_limits<float>::infinity());
  const at::Tensor probs = at::softmax(scores, -1);  // [Hkv, G, L, L]: the full matrix
  const at::Tensor out = at::matmul(probs, vf).reshape({heads, len, dim}).permute({1, 0, 2});
  return {out.to(q.scalar_type()), block_means(probs, block)};
}

}  // namespace foresight
