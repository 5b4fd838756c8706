#pragma once
// What the LibTorch layers of the kernels (kernels/<name>_op.cpp) share: the checks on their
// tensor inputs, with errors that name the op, and the dtype tag their launchers take.
#include <ATen/core/Tensor.h>

#include <string>

#include "kernels/element_type.h"

namespace foresight {

// Throws Error("<op>: <message>") unless `ok`.
void check_op(bool ok, const char* op, const std::string& message);

std::string shape_of(const at::Tensor& t);  // "[8, 2, 64]"

// q, k and v (called `names` in messages, e.g. "q, k and v"): one dtype of float32, float16 or
// bfloat16, on one CPU or CUDA device.
void check_attention_inputs(const char* op, const char* names, const at::Tensor& q, const at::Tensor& k,
                            const at::Tensor& v);

// The launchers' tag for a float32, float16 or bfloat16 tensor.
ElementType element_type(at::ScalarType type);

// The error for CUDA tensors in a build without kernels.
[[noreturn]] void no_cuda_kernels(const char* op);

}  // namespace foresight
