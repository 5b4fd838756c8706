#pragma once
#include <c10/core/ScalarType.h>

#include <functional>
#include <string>

namespace foresight {

// Runs a command body: an Error (or any exception) becomes "error: ..." on stderr and exit code 1.
int run_command(const std::function<void()>& body);

// "float32" | "bfloat16" | "float16" (and the short forms fp32, bf16, fp16).
at::ScalarType parse_dtype(const std::string& name);

}  // namespace foresight
