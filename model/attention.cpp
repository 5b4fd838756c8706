#include "model/attention.h"

#include <ATen/ATen.h>

namespace foresight {

at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  const int64_t t = q.size(-3), s = k.size(-3);
  std::optional<at::Tensor> mask;
  bool is_causal = false;
  if (t == s) {
    is_causal = t > 1;
  } else if (t > 1) {
    // Bottom-right aligned causal mask: query i sees keys j <= s - t + i.
    const auto opts = at::TensorOptions().dtype(at::kLong).device(q.device());
    mask = at::arange(s, opts).unsqueeze(0) <= (at::arange(t, opts) + (s - t)).unsqueeze(1);
  }
  // SDPA wants [batch, heads, seq, dim]; enable_gqa shares each KV head across its query group.
  const bool single = q.dim() == 3;
  const auto batched = [&](const at::Tensor& x) { return (single ? x.unsqueeze(0) : x).transpose(1, 2); };
  const at::Tensor out = at::scaled_dot_product_attention(batched(q), batched(k), batched(v), mask, /*dropout_p=*/0.0,
                                                          is_causal, /*scale=*/std::nullopt, /*enable_gqa=*/true);
  return single ? out.squeeze(0).transpose(0, 1) : out.transpose(1, 2);
}

AttentionFn no_cache_attention() {
  return [](int64_t, const LayerQKV& x) { return causal_attention(x.q, x.k, x.v); };
}

}  // namespace foresight
