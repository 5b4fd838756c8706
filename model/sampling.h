#pragma once
#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

namespace foresight {

struct SamplingOptions {
  double temperature = 1.0;  // 0 means greedy
  double top_p = 1.0;        // nucleus: keep the smallest set of tokens whose mass reaches top_p
};

// Draws the next token id from logits [vocab]. A negative or non-finite temperature is an Error:
// "<= 0 means greedy" would otherwise turn a typo (-0.7) into greedy decoding without a word.
int64_t sample_token(const at::Tensor& logits, const SamplingOptions& options, at::Generator& gen);

}  // namespace foresight
