#include "common/cli.h"

#include <malloc.h>

#include <c10/util/Exception.h>

#include <cstdio>

#include "common/error.h"
#include "common/threads.h"

namespace foresight {

int run_command(const std::function<void()>& body) {
  // Tiled loops free and reallocate multi-megabyte tensors thousands of times. By default glibc
  // serves each from a fresh mmap whose pages fault in again every time (more system than user
  // time in the golden recorder); keeping them in the heap made it up to 2.9x faster.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's maximum
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  try {
    apply_default_threads();
    body();
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
  } catch (const c10::Error& e) {  // LibTorch's own checks: the message without its C++ backtrace
    std::fprintf(stderr, "error: %s\n", e.what_without_backtrace());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
  }
  return 1;
}

at::ScalarType parse_dtype(const std::string& name) {
  if (name == "float32" || name == "fp32") return at::kFloat;
  if (name == "bfloat16" || name == "bf16") return at::kBFloat16;
  if (name == "float16" || name == "fp16") return at::kHalf;
  throw Error("dtype \"" + name + "\" is not supported, expected float32, bfloat16 or float16");
}

}  // namespace foresight
