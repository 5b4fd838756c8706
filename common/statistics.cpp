#include "common/statistics.h"

#include <cmath>

namespace foresight {

MeanWithError mean_with_error(const std::vector<double>& values) {
  MeanWithError r;
  if (values.empty()) return r;
  const auto n = static_cast<double>(values.size());
  for (const double v : values) r.mean += v / n;
  if (values.size() < 2) return r;
  double squares = 0;
  for (const double v : values) squares += (v - r.mean) * (v - r.mean);
  r.standard_error = std::sqrt(squares / (n - 1) / n);
  return r;
}

}  // namespace foresight
