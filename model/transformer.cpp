#include "model/transformer.h"

#include <ATen/ATen.h>

#include "common/error.h"

namespace foresight {

Transformer::Transformer(const Checkpoint& ckpt, const RuntimeOptions& opts)
    : config_(ckpt.config), rope_(ckpt.config) {
  c10::Device device(at::kCPU);
  try {
    device = c10::Device(opts.device);
  } catch (const std::exception&) {
    throw Error("device \"" + opts.device + "\" is not valid, expected cpu, cuda or cuda:N");
  }
  options_ = at::TensorOptions().device(device).dtype(opts.dtype);
  // Same dtype on CPU: .to() returns the mapped tensor itself, so weights are never copied.
  auto take = [&](const std::string& name) { return ckpt.weights.at(name).to(options_); };
  auto maybe = [&](const std::string& name) {
    return ckpt.weights.count(name) ? take(name) : at::Tensor();
  };
  embed_tokens_ = take("model.embed_tokens.weight");
  final_norm_ = take("model.norm.weight");
  lm_head_ = config_.tie_word_embeddings ? embed_tokens_ : take("lm_head.weight");
  for (int64_t l = 0; l < config_.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    Layer layer;
    layer.input_norm = take(p + "input_layernorm.weight");
    layer.post_attention_norm = take(p + "post_attention_layernorm.weight");
    layer.q_proj = take(p + "self_attn.q_proj.weight");
    layer.k_proj = take(p + "self_attn.k_proj.weight");
    layer.v_proj = take(p + "self_attn.v_proj.weight");
    layer.o_proj = take(p + "self_attn.o_proj.weight");
    layer.q_bias = maybe(p + "self_attn.q_proj.bias");
    layer.k_bias = maybe(p + "self_attn.k_proj.bias");
    layer.v_bias = maybe(p + "self_attn.v_proj.bias");
    layer.o_bias = maybe(p + "self_attn.o_proj.bias");
    layer.q_norm = maybe(p + "self_attn.q_norm.weight");
    layer.k_norm = maybe(p + "self_attn.k_norm.weight");
    layer.gate_proj = take(p + "mlp.gate_proj.weight");
    layer.up_proj = take(p + "mlp.up_proj.weight");
    layer.down_proj = take(p + "mlp.down_proj.weight");
    layers_.push_back(std::move(layer));
  }
}

Transformer Transformer::load(const std::string& dir, const RuntimeOptions& options) {
  return Transformer(load_checkpoint(dir), options);
}

at::Tensor Transformer::rms_norm(const at::Tensor& x, const at::Tensor& weight) const {
  // As HF: normalise in float32, cast back, then scale.
  const at::Tensor x32 = x.to(at::kFloat);
  const at::Tensor normed = x32 * at::rsqrt(x32.pow(2).mean(-1, true) + config_.rms_norm_eps);
  return weight * normed.to(x.scalar_type());
}

LayerQKV Transformer::project_qkv(const Layer& layer, const at::Tensor& normed,
                                  const RotaryEmbedding::Angles& angles) const {
  // [..., T, hidden] -> [..., T, heads, head_dim], whatever the leading (batch) dimensions.
  const auto split_heads = [&](const at::Tensor& x, int64_t heads) {
    std::vector<int64_t> shape = normed.sizes().vec();
    shape.back() = heads;
    shape.push_back(config_.head_dim);
    return x.view(shape);
  };
  at::Tensor q = split_heads(at::linear(normed, layer.q_proj, layer.q_bias), config_.num_heads);
  at::Tensor k = split_heads(at::linear(normed, layer.k_proj, layer.k_bias), config_.num_kv_heads);
  at::Tensor v = split_heads(at::linear(normed, layer.v_proj, layer.v_bias), config_.num_kv_heads);
  if (config_.qk_norm) {
    q = rms_norm(q, layer.q_norm);
    k = rms_norm(k, layer.k_norm);
  }
  return {RotaryEmbedding::apply(q, angles), RotaryEmbedding::apply(k, angles), v};
}

at::Tensor Transformer::mlp(const Layer& layer, const at::Tensor& x) const {
  return at::linear(at::silu(at::linear(x, layer.gate_proj)) * at::linear(x, layer.up_proj),
                    layer.down_proj);
}

at::Tensor Transformer::forward(const at::Tensor& ids, int64_t start_pos,
                                const AttentionFn& attention) const {
  const at::Tensor tokens = ids.to(options_.device(), at::kLong);
  const int64_t t = tokens.size(-1);
  const at::Tensor positions =
      at::arange(start_pos, start_pos + t, at::TensorOptions().dtype(at::kLong).device(options_.device()));
  const RotaryEmbedding::Angles angles = rope_.angles(positions, options_.dtype().toScalarType());
  at::Tensor hidden = at::embedding(embed_tokens_, tokens);
  for (int64_t l = 0; l < config_.num_layers; ++l) {
    const Layer& layer = layers_[static_cast<std::size_t>(l)];
    const LayerQKV qkv = project_qkv(layer, rms_norm(hidden, layer.input_norm), angles);
    const at::Tensor attn = attention(l, qkv).flatten(-2);  // [..., T, heads * head_dim]
    hidden = hidden + at::linear(attn, layer.o_proj, layer.o_bias);
    hidden = hidden + mlp(layer, rms_norm(hidden, layer.post_attention_norm));
  }
  return rms_norm(hidden, final_norm_);
}

at::Tensor Transformer::logits(const at::Tensor& hidden) const { return at::linear(hidden, lm_head_); }

}  // namespace foresight
