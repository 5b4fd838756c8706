#include "kernels/op_support.h"

#include <sstream>

#include "common/error.h"

namespace foresight {

void check_op(bool ok, const char* op, const std::string& message) {
  if (!ok) throw Error(std::string(op) + ": " + message);
}

std::string shape_of(const at::Tensor& t) {
  std::ostringstream s;
  s << t.sizes();
  return s.str();
}

void check_attention_inputs(const char* op, const char* names, const at::Tensor& q, const at::Tensor& k,
                            const at::Tensor& v) {
  const std::string n(names);
  check_op(q.defined() && k.defined() && v.defined(), op, n + " must all be given");
  const at::ScalarType type = q.scalar_type();
  check_op(type == at::kFloat || type == at::kHalf || type == at::kBFloat16, op,
           n + " must be float32, float16 or bfloat16, got " + c10::toString(type));
  check_op(k.scalar_type() == type && v.scalar_type() == type, op,
           n + " must share a dtype, got " + c10::toString(type) + ", " + c10::toString(k.scalar_type()) + " and " +
               c10::toString(v.scalar_type()));
  check_op(k.device() == q.device() && v.device() == q.device(), op,
           n + " must be on one device, got " + q.device().str() + ", " + k.device().str() + " and " + v.device().str());
  check_op(q.is_cpu() || q.is_cuda(), op, "runs on CPU or CUDA tensors, got " + q.device().str());
}

ElementType element_type(at::ScalarType type) {
  switch (type) {
    case at::kFloat: return ElementType::Float32;
    case at::kHalf: return ElementType::Float16;
    case at::kBFloat16: return ElementType::BFloat16;
    default: throw Error(std::string("kernels take float32, float16 or bfloat16 tensors, got ") + c10::toString(type));
  }
}

void no_cuda_kernels(const char* op) {
  throw Error(std::string(op) + ": got CUDA tensors, but this build has no CUDA kernels (it needs nvcc and a "
              "CUDA-enabled torch; FORESIGHT_CUDA=AUTO or ON)");
}

}  // namespace foresight
