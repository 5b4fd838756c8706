#include "train/run_state.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <limits>

#include "common/error.h"

namespace foresight {
namespace {

std::string error_of(const std::vector<at::Tensor>& parameters, int64_t last_good) {
  try {
    check_finite_parameters(parameters, 7, "out", last_good);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// A weight overflowed by an update (a huge learning rate): the step must stop before it is saved.
TEST(RunState, NonFiniteWeightsStopTheStepNamingTheLastGoodCheckpoint) {
  const at::Tensor finite = at::full({2, 3}, 3.0e38f);
  at::Tensor overflowed = finite.clone();
  overflowed[1][2] = std::numeric_limits<float>::infinity();
  at::Tensor nan = at::zeros({4});
  nan[0] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(error_of({finite, at::zeros({4})}, 5), "");
  const std::string inf_error = error_of({finite, overflowed}, 5);
  EXPECT_NE(inf_error.find("the update of step 7 made the scorer's weights non-finite"), std::string::npos) << inf_error;
  EXPECT_NE(inf_error.find("the last good checkpoint is out/step_5"), std::string::npos) << inf_error;
  EXPECT_NE(error_of({nan}, -1).find("no checkpoint was saved yet"), std::string::npos);
}

}  // namespace
}  // namespace foresight
