#pragma once
#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "model/attention.h"
#include "model/checkpoint.h"
#include "model/config.h"
#include "model/rope.h"

namespace foresight {

struct RuntimeOptions {
  std::string device = "cpu";                  // "cpu", "cuda", "cuda:N"
  at::ScalarType dtype = at::kFloat;           // compute dtype; weights are cast once at load
};

// A frozen decoder-only LM (Qwen2, Qwen3, Llama) over one sequence, or a batch of sequences at the
// same positions. The model never owns a cache: every forward hands each layer's q/k/v to an
// AttentionFn (see attention.h).
class Transformer {
 public:
  Transformer(const Checkpoint& checkpoint, const RuntimeOptions& options);
  static Transformer load(const std::string& dir, const RuntimeOptions& options);

  const ModelConfig& config() const { return config_; }
  at::TensorOptions options() const { return options_; }

  // Runs `ids` [T] or [N, T] (int64, any device) at positions start_pos .. start_pos+T-1 and returns
  // the final-normed hidden states [T, hidden] or [N, T, hidden]; the AttentionFn sees q/k/v with
  // the same leading batch dimension. Caller checks ids against the vocabulary.
  at::Tensor forward(const at::Tensor& ids, int64_t start_pos, const AttentionFn& attention) const;

  // Next-token logits [..., vocab] in the compute dtype.
  at::Tensor logits(const at::Tensor& hidden) const;

 private:
  struct Layer {
    at::Tensor input_norm, post_attention_norm;
    at::Tensor q_proj, k_proj, v_proj, o_proj;
    at::Tensor q_bias, k_bias, v_bias, o_bias;  // undefined when the architecture has none
    at::Tensor q_norm, k_norm;                  // Qwen3 only
    at::Tensor gate_proj, up_proj, down_proj;
  };

  at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight) const;
  LayerQKV project_qkv(const Layer& layer, const at::Tensor& normed,
                       const RotaryEmbedding::Angles& angles) const;
  at::Tensor mlp(const Layer& layer, const at::Tensor& x) const;

  ModelConfig config_;
  at::TensorOptions options_;
  RotaryEmbedding rope_;
  at::Tensor embed_tokens_, final_norm_, lm_head_;
  std::vector<Layer> layers_;
};

}  // namespace foresight
