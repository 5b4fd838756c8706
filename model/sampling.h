#pragma once
#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

namespace foresight {

struct SamplingOptions {
  double temperature = 1.0;  // 0 means greedy
  double top_p = 1.0;        // nucleus: keep the smallest set of tokens whose mass reaches top_p
  int64_t top_k = 0;         // keep the k most likely tokens first (0: all)
};

// Throws unless temperature is 0 (greedy) or positive, top_p lies in (0, 1] and top_k >= 0. A negative
// temperature is refused rather than read as greedy, which would turn a typo (-0.7) into greedy
// decoding without a word.
void check_sampling_options(const SamplingOptions& options);

// Draws the next token id from logits [vocab]; check_sampling_options first. As HF's warpers:
// temperature, then top-k, then top-p; greedy is the argmax (the lowest id among equals).
int64_t sample_token(const at::Tensor& logits, const SamplingOptions& options, at::Generator& gen);

}  // namespace foresight
