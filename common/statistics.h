#pragma once
#include <vector>

namespace foresight {

// The mean of per-problem values and its standard error: their sample standard deviation over
// sqrt(n); 0 for fewer than two values, which have no spread to estimate.
struct MeanWithError {
  double mean = 0;
  double standard_error = 0;
};
MeanWithError mean_with_error(const std::vector<double>& values);

// The standard normal quantile: the z with P(Z <= z) = p, for 0 < p < 1.
double normal_quantile(double p);

}  // namespace foresight
