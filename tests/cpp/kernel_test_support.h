#pragma once
// What the kernel tests share: the skip without a GPU, error expectations, and comparisons
// relative to a tensor's scale with the dtype's tolerance.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <string>

#include "common/error.h"

#define SKIP_WITHOUT_GPU() \
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device on this machine: the kernel is checked on a GPU machine"

namespace foresight::test_support {

template <typename Call>
void expect_error(Call call, const std::string& words) {
  try {
    call();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
    return;
  }
  ADD_FAILURE() << "no error; expected one saying \"" << words << "\"";
}

inline const char* type_name(at::ScalarType type) {
  return type == at::kFloat ? "fp32" : type == at::kHalf ? "fp16" : "bf16";
}

// fp32 1e-5, fp16/bf16 1e-2 (relative).
inline double tolerance(at::ScalarType type) { return type == at::kFloat ? 1e-5 : 1e-2; }

// max |got - want| / max |want|: relative to the tensor's scale, not to each element's, which for
// a probability a millionth of its row's would measure rounding noise.
inline double relative_error(const at::Tensor& got, const at::Tensor& want) {
  const at::Tensor g = got.to(at::kCPU, at::kDouble), w = want.to(at::kCPU, at::kDouble);
  return ((g - w).abs().max() / w.abs().max()).item<double>();
}

// Outputs are poisoned with NaN before a launch: none may be left.
inline bool all_written(const at::Tensor& x) { return !x.isnan().any().item<bool>(); }

}  // namespace foresight::test_support
