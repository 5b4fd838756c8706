#pragma once
// The eviction schedule of DESIGN.md §2 driven incrementally (§10): tokens are fed in pieces of any
// size (a whole trace, a prompt, one decoded token at a time) for a batch of sequences that advance
// together. The teacher-forced runner (budgeted_runner.h) and generation both drive it: one
// schedule, two drivers.
#include <ATen/core/Tensor.h>

#include <vector>

#include "cache/cache_step.h"
#include "cache/layer_cache.h"
#include "cache/schedule.h"
#include "model/attention.h"

namespace foresight {

class Transformer;

// Chooses the W slots to drop at one eviction step of one layer of one sequence: int64 [Hkv, W],
// each < B. Policies decide through policy/policy_drops.h, which turns the step into their features.
class DropDecider {
 public:
  virtual ~DropDecider() = default;
  virtual at::Tensor decide(const CacheStep& step) = 0;
};

class BudgetedDecoder {
 public:
  // One decider per sequence: the batch is deciders.size(). The model is frozen. With
  // record_drops, every step's drops are kept for drop_slots() and drop_positions(); without, memory
  // stays flat however long the generation.
  BudgetedDecoder(const Transformer& model, const EvictionSchedule& schedule, std::vector<DropDecider*> deciders,
                  bool record_drops = true);

  // Feeds tokens [N, T] (int64) at positions length() .. length()+T-1 and returns the final hidden
  // states [N, T, hidden]. The initial chunk takes the first B tokens, then chunks of W; when a
  // chunk of W is full and another token comes, every layer first drops W of its B older slots per
  // sequence and KV head (the eviction step). So each layer holds at most B + W entries.
  at::Tensor feed(const at::Tensor& tokens);

  // Turns a batch of one into a batch of deciders.size() copies of it, each then decided by its
  // own decider: tokens every sequence shares (a prompt, the first B + W tokens of G rollouts of
  // one trace) run once. Only before the first eviction step, so no decision is copied.
  void branch(std::vector<DropDecider*> deciders);

  int64_t length() const { return length_; }
  int64_t evictions() const { return steps_; }  // eviction steps run
  int64_t peak_entries() const { return peak_; }  // most entries any layer held (per sequence and KV head)

  // int32 [N, layers, steps, Hkv, W] on the CPU: per sequence, the slots dropped at each step (in the
  // compacted cache of that step) and their absolute token positions. Only with record_drops.
  at::Tensor drop_slots() const;
  at::Tensor drop_positions() const;

 private:
  int64_t chunk_end() const { return chunk_ < 0 ? schedule_.budget : chunk_start_ + schedule_.interval; }
  void begin_chunk();  // the next chunk, after the eviction step the full one awaits
  at::Tensor attend(int64_t layer, const LayerQKV& qkv);
  at::Tensor by_sequence(const std::vector<at::Tensor>& per_step) const;

  const Transformer& model_;
  EvictionSchedule schedule_;
  std::vector<DropDecider*> deciders_;
  int64_t batch_, kv_heads_;
  std::vector<LayerCache> caches_;  // per layer, the batch's KV heads side by side: [N * Hkv, ...]
  AttentionFn attention_;
  bool record_drops_;
  int64_t length_ = 0, chunk_ = -1, chunk_start_ = 0, peak_ = 0, steps_ = 0;  // chunk_ -1: the initial chunk
  std::vector<at::Tensor> slots_, positions_;  // per step: int32 [layers, N * Hkv, W]
};

}  // namespace foresight
