#pragma once
#include <ATen/core/Tensor.h>

#include <functional>

namespace foresight {

// One layer's attention inputs for T new tokens, exactly as the attention sees them:
// queries and keys after q/k norm (Qwen3) and RoPE. A batched forward adds a leading [N].
struct LayerQKV {
  at::Tensor q;  // [T, num_heads, head_dim]
  at::Tensor k;  // [T, num_kv_heads, head_dim]
  at::Tensor v;  // [T, num_kv_heads, head_dim]
};

// The attention seam. The transformer calls it once per layer with that layer's fresh q/k/v and
// takes back the attention output [T, num_heads, head_dim]. Whoever implements it owns the cache
// (full, budgeted, recording), so stages change attention without touching or copying the model.
using AttentionFn = std::function<at::Tensor(int64_t layer, const LayerQKV& qkv)>;

// Softmax attention of q [T, H, d] over k, v [S, Hkv, d] (S >= T, H a multiple of Hkv): query i
// sits at key position S - T + i and sees keys up to and including it. Softmax in float32
// statistics; output in q's dtype. A leading batch dimension [N] on all three is kept.
at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

// An AttentionFn without a cache: each call attends causally over its own tokens only.
AttentionFn no_cache_attention();

}  // namespace foresight
