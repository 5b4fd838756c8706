#include <gtest/gtest.h>

#include "common/statistics.h"

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

}  // namespace
}  // namespace foresight
