#include "kernels/chunk_statistics.h"

#include <ATen/ATen.h>

#include <algorithm>

namespace foresight {

ChunkStatistics ChunkStatistics::first(int64_t keys) const {
  auto head = [&](const at::Tensor& x) { return x.slice(1, 0, keys); };
  return {head(max), head(min), head(sum), head(sum16), head(sum8), head(sum32)};
}

ChunkStatistics chunk_statistics(const at::Tensor& probs) {
  const int64_t t = probs.size(2);
  // Each statistic over the chunk's queries (dim 2), as [Hkv, S, G].
  auto over_queries = [](const at::Tensor& x) { return x.transpose(1, 2); };
  auto last = [&](int64_t n) { return over_queries(probs.slice(2, std::max<int64_t>(0, t - n)).sum(2)); };
  return {over_queries(std::get<0>(probs.max(2))), over_queries(std::get<0>(probs.min(2))),
          over_queries(probs.sum(2)), last(16), last(8), last(32)};
}

}  // namespace foresight
