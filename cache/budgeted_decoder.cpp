#include "cache/budgeted_decoder.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "common/error.h"
#include "model/transformer.h"

namespace foresight {

namespace {

// Sequence n's rows of a step over the batch's KV heads [N * Hkv, ...].
CacheStep sequence_step(const CacheStep& all, int64_t n, int64_t kv) {
  const auto rows = [&](const at::Tensor& x) { return x.slice(0, n * kv, (n + 1) * kv); };
  CacheStep s;
  s.layer = all.layer;
  s.step = all.step;
  s.keys = rows(all.keys);
  s.values = rows(all.values);
  s.stats = {rows(all.stats.max), rows(all.stats.min), rows(all.stats.sum),
             rows(all.stats.sum16), rows(all.stats.sum8), rows(all.stats.sum32)};
  s.cum = rows(all.cum);
  s.cum_decay = rows(all.cum_decay);
  s.positions = rows(all.positions);
  s.attention = rows(all.attention);
  s.protect = all.protect;
  return s;
}

}  // namespace

BudgetedDecoder::BudgetedDecoder(const Transformer& model, const EvictionSchedule& schedule,
                                 std::vector<DropDecider*> deciders, bool record_drops)
    : model_(model),
      schedule_(schedule),
      deciders_(std::move(deciders)),
      batch_(static_cast<int64_t>(deciders_.size())),
      kv_heads_(model.config().num_kv_heads),
      caches_(static_cast<std::size_t>(model.config().num_layers)),
      record_drops_(record_drops) {
  schedule_.validate();
  if (batch_ == 0) throw Error("budgeted decoder: no sequence to decode (no decider given)");
  for (LayerCache& cache : caches_) cache.begin_chunk(schedule_.budget, /*keep_rows=*/false);  // never evicts
  attention_ = [this](int64_t layer, const LayerQKV& qkv) { return attend(layer, qkv); };
}

at::Tensor BudgetedDecoder::attend(int64_t layer, const LayerQKV& qkv) {
  // [N, T, heads, d] -> [T, N * heads, d]: the batch's heads side by side, each with its own slots.
  const auto fold = [&](const at::Tensor& x) {
    return x.permute({1, 0, 2, 3}).reshape({x.size(1), x.size(0) * x.size(2), x.size(3)});
  };
  LayerCache& cache = caches_[static_cast<std::size_t>(layer)];
  const at::Tensor out = cache.append({fold(qkv.q), fold(qkv.k), fold(qkv.v)}, length_);
  peak_ = std::max(peak_, cache.size());
  const int64_t t = qkv.q.size(1), heads = qkv.q.size(2), d = qkv.q.size(3);
  return out.reshape({t, batch_, heads, d}).permute({1, 0, 2, 3});
}

void BudgetedDecoder::begin_chunk() {
  if (chunk_ >= 0) {  // a full chunk of W and a token after it: the eviction step
    const int64_t step = chunk_, budget = schedule_.budget;
    std::vector<at::Tensor> slots, positions;
    for (std::size_t l = 0; l < caches_.size(); ++l) {
      CacheStep all = caches_[l].candidates(budget);
      all.layer = static_cast<int64_t>(l);
      all.step = step;
      all.protect = schedule_.protect;
      std::vector<at::Tensor> drops;
      for (int64_t n = 0; n < batch_; ++n) drops.push_back(deciders_[n]->decide(sequence_step(all, n, kv_heads_)));
      const at::Tensor layer_drops = batch_ == 1 ? drops.front() : at::cat(drops);  // [N * Hkv, W]
      if (record_drops_) {
        slots.push_back(layer_drops.to(at::kInt));
        positions.push_back(all.positions.gather(1, layer_drops).to(at::kInt));
      }
      caches_[l].evict(layer_drops, budget);
    }
    if (record_drops_) {
      slots_.push_back(at::stack(slots));
      positions_.push_back(at::stack(positions));
    }
    ++steps_;
  }
  ++chunk_;
  chunk_start_ = length_;
  for (LayerCache& cache : caches_) cache.begin_chunk(schedule_.interval, /*keep_rows=*/true);
}

void BudgetedDecoder::branch(std::vector<DropDecider*> deciders) {
  if (batch_ != 1) throw Error("budgeted decoder: only a batch of one branches; this one has " + std::to_string(batch_));
  if (steps_ != 0) throw Error("budgeted decoder: branching after an eviction step would copy one sequence's drops");
  if (deciders.empty()) throw Error("budgeted decoder: no sequence to branch into (no decider given)");
  deciders_ = std::move(deciders);
  batch_ = static_cast<int64_t>(deciders_.size());
  for (LayerCache& cache : caches_) cache.repeat_heads(batch_);
}

at::Tensor BudgetedDecoder::feed(const at::Tensor& tokens) {
  c10::NoGradGuard frozen;  // the model is frozen; deciders that train enable grad themselves
  if (tokens.dim() != 2 || tokens.size(0) != batch_) {
    throw Error("budgeted decoder: expected tokens [" + std::to_string(batch_) + ", T], got " +
                std::to_string(tokens.dim()) + " dimensions");
  }
  if (tokens.size(1) == 0) throw Error("budgeted decoder: no tokens to feed");
  std::vector<at::Tensor> hidden;
  for (int64_t done = 0, total = tokens.size(1); done < total;) {
    if (length_ == chunk_end()) begin_chunk();
    const int64_t piece = std::min(total - done, chunk_end() - length_);
    hidden.push_back(model_.forward(tokens.slice(1, done, done + piece), length_, attention_));
    length_ += piece;
    done += piece;
  }
  return hidden.size() == 1 ? hidden.front() : at::cat(hidden, 1);
}

at::Tensor BudgetedDecoder::by_sequence(const std::vector<at::Tensor>& per_step) const {
  if (!record_drops_) throw Error("budgeted decoder: drops were not recorded (record_drops is off)");
  const auto layers = static_cast<int64_t>(caches_.size());
  if (per_step.empty()) return at::empty({batch_, layers, 0, kv_heads_, schedule_.interval}, at::kInt);
  const auto steps = static_cast<int64_t>(per_step.size());
  // [steps, layers, N * Hkv, W] -> [N, layers, steps, Hkv, W]
  return at::stack(per_step)
      .view({steps, layers, batch_, kv_heads_, schedule_.interval})
      .permute({2, 1, 0, 3, 4})
      .to(at::kCPU, at::kInt)
      .contiguous();
}

at::Tensor BudgetedDecoder::drop_slots() const { return by_sequence(slots_); }
at::Tensor BudgetedDecoder::drop_positions() const { return by_sequence(positions_); }

}  // namespace foresight
