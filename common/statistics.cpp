#include "common/statistics.h"

#include <cmath>
#include <stdexcept>
#include <string>

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

double normal_quantile(double p) {
  if (!(p > 0 && p < 1)) throw std::invalid_argument("normal_quantile: p = " + std::to_string(p) + ", expected 0 < p < 1");
  // Bisection on the CDF, 0.5 erfc(-z / sqrt 2), which std::erfc gives to full precision in both
  // tails: 200 halvings of [-40, 40] end where the midpoint no longer moves.
  double lo = -40, hi = 40;
  for (int i = 0; i < 200; ++i) {
    const double mid = 0.5 * (lo + hi);
    if (mid == lo || mid == hi) break;
    (0.5 * std::erfc(-mid / std::sqrt(2.0)) < p ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

}  // namespace foresight
