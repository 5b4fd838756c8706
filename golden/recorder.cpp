#include "golden/recorder.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include "kernels/block_attention_op.h"
#include "model/token_metrics.h"
#include "model/transformer.h"

namespace foresight {

namespace {

void stack_drops(const std::vector<OracleDrops>& layers, GoldenTrace& trace) {
  std::vector<at::Tensor> slots, positions, scores;
  for (const OracleDrops& d : layers) {
    slots.push_back(d.drop_slots);
    positions.push_back(d.drop_positions);
    scores.push_back(d.scores);
  }
  trace.drop_slots = at::stack(slots).cpu();
  trace.drop_positions = at::stack(positions).cpu();
  trace.oracle_scores = at::stack(scores).cpu();
}

}  // namespace

GoldenTrace record_golden_trace(const Transformer& model, const std::vector<int64_t>& ids,
                                const GoldenOptions& options) {
  c10::InferenceMode inference;
  const at::Tensor tokens = at::tensor(at::ArrayRef<int64_t>(ids), at::kLong);
  std::vector<OracleDrops> drops;
  std::vector<at::Tensor> kept;
  const AttentionFn recording = [&](int64_t, const LayerQKV& qkv) {
    BlockAttention a = block_attention_op(qkv.q, qkv.k, qkv.v, options.schedule.interval, options.tiles);
    drops.push_back(golden_eviction(a.blocks, options.schedule));
    if (options.keep_attention) kept.push_back(a.blocks.to(at::kCPU, at::kHalf));
    return a.output;
  };
  const at::Tensor hidden = model.forward(tokens, 0, recording);
  const TokenMetrics metrics = token_metrics(model, hidden, tokens);

  GoldenTrace trace;
  trace.tokens = tokens.to(at::kInt);
  trace.nll = metrics.nll;
  trace.entropy = metrics.entropy;
  stack_drops(drops, trace);
  if (options.keep_attention) trace.attention = at::stack(kept);
  return trace;
}

void replay_oracle(const at::Tensor& attention, const EvictionSchedule& schedule, GoldenTrace& trace) {
  std::vector<OracleDrops> drops;
  for (int64_t l = 0; l < attention.size(0); ++l) {
    drops.push_back(golden_eviction(attention[l].to(at::kFloat), schedule));
  }
  stack_drops(drops, trace);
}

}  // namespace foresight
