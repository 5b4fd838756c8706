#pragma once
#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

namespace foresight {

struct SamplingOptions {
  double temperature = 1.0;  // 0 means greedy
  double top_p = 1.0;        // nucleus: keep the smallest set of tokens whose mass reaches top_p
};

// Throws unless temperature is 0 (greedy) or positive and top_p lies in (0, 1]. A negative
// temperature is refused rather than read as greedy, which would turn a typo (-0.7) into greedy
// decoding without a word.
void check_sampling_options(const SamplingOptions& options);

// Draws the next token id from logits [vocab]; check_sampling_options first.
int64_t sample_token(const at::Tensor& logits, const SamplingOptions& options, at::Generator& gen);

}  // namespace foresight
