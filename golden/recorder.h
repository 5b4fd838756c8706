#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "golden/oracle.h"
#include "kernels/block_attention_cpu.h"

namespace foresight {

class Transformer;

struct GoldenOptions {
  EvictionSchedule schedule;
  RecorderTiles tiles;
  bool keep_attention = false;
};

// Everything the golden stage stores for one trace (the layout of the trace file, DESIGN.md §8).
struct GoldenTrace {
  at::Tensor tokens;          // int32 [L]
  at::Tensor nll;             // float32 [L-1], full cache
  at::Tensor entropy;         // float32 [L-1], full cache
  at::Tensor drop_slots;      // int32 [layers, steps, Hkv, W]
  at::Tensor drop_positions;  // int32 [layers, steps, Hkv, W]
  at::Tensor oracle_scores;   // float32 [layers, steps, Hkv, B]
  at::Tensor attention;       // float16 [layers, Hkv, L, blocks]; undefined unless kept
};

// One full-cache forward over `ids` whose attention records each layer's block attention; the
// oracle runs layer by layer as the forward goes, so the recording is dropped unless kept.
GoldenTrace record_golden_trace(const Transformer& model, const std::vector<int64_t>& ids,
                                const GoldenOptions& options);

// Oracle drops of every layer from stored block attention [layers, Hkv, L, blocks].
void replay_oracle(const at::Tensor& attention, const EvictionSchedule& schedule, GoldenTrace& trace);

}  // namespace foresight
