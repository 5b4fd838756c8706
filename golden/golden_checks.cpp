#include "golden/golden_checks.h"

#include <ATen/ATen.h>

#include <cmath>
#include <vector>

#include "common/error.h"
#include "golden/recorder.h"

namespace foresight {

namespace {

// Oracle scores and block attention are means of float32 probabilities, so they can exceed 1 by
// rounding; anything beyond this is not rounding.
constexpr float kRounding = 1e-3f;

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// "[1, 0, 3]" for flat index `i` of a tensor of `sizes`.
std::string index_of(int64_t i, at::IntArrayRef sizes) {
  std::vector<int64_t> idx(sizes.size());
  for (std::size_t d = sizes.size(); d-- > 0;) {
    idx[d] = i % sizes[d];
    i /= sizes[d];
  }
  std::string s = "[";
  for (std::size_t d = 0; d < idx.size(); ++d) s += (d ? ", " : "") + std::to_string(idx[d]);
  return s + "]";
}

// Every value finite and in [lo, hi].
void check_range(const at::Tensor& values, const char* name, float lo, float hi, const std::string& expected,
                 const std::string& where) {
  const at::Tensor t = values.to(at::kFloat).contiguous();
  const float* v = t.data_ptr<float>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (!std::isfinite(v[i]) || v[i] < lo || v[i] > hi) {
      throw Error(where + ": " + name + index_of(i, t.sizes()) + " is " + number(v[i]) + ", expected " + expected);
    }
  }
}

void check_tokens(const at::Tensor& tokens, int64_t vocab, const std::string& where) {
  const at::Tensor t = tokens.contiguous();
  const int32_t* v = t.data_ptr<int32_t>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (v[i] < 0 || (vocab > 0 && v[i] >= vocab)) {
      throw Error(where + ": tokens[" + std::to_string(i) + "] is " + std::to_string(v[i]) + ", expected " +
                  (vocab > 0 ? "a token id of the model's vocabulary, 0.." + std::to_string(vocab - 1)
                             : std::string("a token id >= 0")));
    }
  }
}

// Replays the schedule per (layer, KV head) over positions, as DESIGN.md §2 compacts the cache.
void check_drops(const at::Tensor& drop_slots, const at::Tensor& drop_positions, const EvictionSchedule& s,
                 const std::string& where) {
  const at::Tensor slots = drop_slots.contiguous(), positions = drop_positions.contiguous();
  const int64_t layers = slots.size(0), steps = slots.size(1), kv = slots.size(2), w = s.interval, b = s.budget;
  const int32_t* slot = slots.data_ptr<int32_t>();
  const int32_t* pos = positions.data_ptr<int32_t>();
  std::vector<int64_t> cache(static_cast<std::size_t>(b)), next;
  for (int64_t l = 0; l < layers; ++l) {
    for (int64_t k = 0; k < kv; ++k) {
      for (int64_t j = 0; j < b; ++j) cache[static_cast<std::size_t>(j)] = j;
      for (int64_t step = 0; step < steps; ++step) {
        const int64_t row = ((l * steps + step) * kv + k) * w;
        const std::string at = "[layer " + std::to_string(l) + ", step " + std::to_string(step) + ", kv head " +
                               std::to_string(k);
        next.clear();
        int64_t kept_from = 0;  // survivors before the next dropped slot
        for (int64_t i = 0; i < w; ++i) {
          const int64_t sl = slot[row + i];
          if (sl < 0 || sl >= b) {
            throw Error(where + ": drop_slots" + at + "] holds slot " + std::to_string(sl) + ", expected 0.." +
                        std::to_string(b - 1));
          }
          if (i > 0 && sl <= slot[row + i - 1]) {
            throw Error(where + ": drop_slots" + at + "] " +
                        (sl == slot[row + i - 1] ? "holds slot " + std::to_string(sl) + " twice"
                                                 : std::string("is not ascending")) +
                        ", expected " + std::to_string(w) + " distinct ascending slots");
          }
          const int64_t expected = cache[static_cast<std::size_t>(sl)];
          if (pos[row + i] != expected) {
            throw Error(where + ": drop_positions" + at + ", drop " + std::to_string(i) + "] is " +
                        std::to_string(pos[row + i]) + ", but slot " + std::to_string(sl) + " holds position " +
                        std::to_string(expected) + " by then");
          }
          next.insert(next.end(), cache.begin() + kept_from, cache.begin() + sl);
          kept_from = sl + 1;
        }
        next.insert(next.end(), cache.begin() + kept_from, cache.end());
        for (int64_t j = 0; j < w; ++j) next.push_back(b + step * w + j);
        cache.swap(next);
      }
    }
  }
}

}  // namespace

void check_golden_values(const GoldenTrace& t, const EvictionSchedule& schedule, int64_t vocab,
                         const std::string& where) {
  check_tokens(t.tokens, vocab, where);
  const float inf = INFINITY;
  check_range(t.nll, "nll", -inf, inf, "a finite number", where);
  check_range(t.entropy, "entropy", -inf, inf, "a finite number", where);
  check_range(t.oracle_scores, "oracle_scores", -1 - kRounding, 0, "in [-1, 0] (minus an attention probability)",
              where);
  if (t.attention.defined()) check_range(t.attention, "attention", 0, 1 + kRounding, "in [0, 1]", where);
  check_drops(t.drop_slots, t.drop_positions, schedule, where);
}

}  // namespace foresight
