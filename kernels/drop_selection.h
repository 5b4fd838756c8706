#pragma once
// The drop rules of DESIGN.md §6 in plain LibTorch ops: what policies use on the CPU and the
// reference the select_compact kernel is checked against.
#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <optional>

namespace foresight {

// DESIGN.md §2's protected entries sit in the first `protect` slots of the candidates (they are
// never dropped and survivors keep their order): their scores [..., B] become -inf, so that no drop
// rule below picks them. `scores` itself when nothing is protected.
at::Tensor mask_protected(const at::Tensor& scores, int64_t protect);

// Greedy: the `w` highest scores per row of [Hkv, B] (ties to the lower slot), as ascending slots.
at::Tensor top_w(const at::Tensor& scores, int64_t w);

// One sampled eviction (DESIGN.md §6): among the 2w highest scores per row, softmax, then `w`
// drawn without replacement. `order` keeps the draw order, which the Plackett-Luce
// log-probability needs; `pool` is the 2w slots the draws came from.
struct SampledDrops {
  at::Tensor slots;  // int64 [Hkv, w], ascending
  at::Tensor order;  // int64 [Hkv, w], in draw order
  at::Tensor pool;   // int64 [Hkv, 2w], the candidates the draws were made from
};
// The draw runs on the CPU; the drops go to `device` (default: the scores'). Scores already copied
// to the host can be passed with the device they came from, so that a caller who reads them there
// too (rl/rollout.cpp's finiteness check) copies them once.
SampledDrops sample_drops(const at::Tensor& scores, int64_t w, at::Generator& gen,
                          std::optional<at::Device> device = std::nullopt);

// sample_drops(...).slots
at::Tensor sample_w(const at::Tensor& scores, int64_t w, at::Generator& gen);

}  // namespace foresight
