#include <gtest/gtest.h>

#include "common/statistics.h"

#include <stdexcept>

namespace foresight {
namespace {

// Worked by hand: {1, 0, 1, 1} has mean 0.75, squared deviations summing to 0.75, so the sample
// variance is 0.25 and the standard error sqrt(0.25 / 4) = 0.25.
TEST(MeanWithError, MatchesAHandWorkedCase) {
  const MeanWithError r = mean_with_error({1, 0, 1, 1});
  EXPECT_DOUBLE_EQ(r.mean, 0.75);
  EXPECT_DOUBLE_EQ(r.standard_error, 0.25);
}

TEST(MeanWithError, OneValueHasNoSpreadAndNoneHasNoMean) {
  EXPECT_DOUBLE_EQ(mean_with_error({0.5}).mean, 0.5);
  EXPECT_DOUBLE_EQ(mean_with_error({0.5}).standard_error, 0.0);
  EXPECT_DOUBLE_EQ(mean_with_error({}).mean, 0.0);
}

// Against the printed normal table (Abramowitz & Stegun 26.2), to the 9 digits it gives.
TEST(NormalQuantile, MatchesTheNormalTable) {
  EXPECT_NEAR(normal_quantile(0.5), 0.0, 1e-12);
  EXPECT_NEAR(normal_quantile(0.9), 1.281551566, 1e-9);
  EXPECT_NEAR(normal_quantile(0.975), 1.959963985, 1e-9);
  EXPECT_NEAR(normal_quantile(0.995), 2.575829304, 1e-9);
  EXPECT_NEAR(normal_quantile(0.025), -1.959963985, 1e-9);
  EXPECT_NEAR(normal_quantile(1 - 1e-6), 4.753424309, 1e-8);
}

TEST(NormalQuantile, RefusesProbabilitiesOutsideTheOpenInterval) {
  EXPECT_THROW(normal_quantile(0.0), std::invalid_argument);
  EXPECT_THROW(normal_quantile(1.0), std::invalid_argument);
}

}  // namespace
}  // namespace foresight
