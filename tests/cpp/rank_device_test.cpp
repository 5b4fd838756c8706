#include <gtest/gtest.h>

#include <cstdlib>

#include "common/collective.h"
#include "common/config.h"
#include "common/error.h"
#include "model/runtime_config.h"

namespace foresight {
namespace {

TEST(RankDevice, OneProcessKeepsTheConfiguredDevice) {
  for (const char* device : {"cpu", "cuda", "cuda:3"}) {
    const RankDevice d = device_for_rank(device, {0, 1, 0});
    EXPECT_EQ(d.device, device);
    EXPECT_EQ(d.refusal, "");
  }
}

TEST(RankDevice, UnderTorchrunCudaIsTheLocalRanksGpu) {
  EXPECT_EQ(device_for_rank("cuda", {5, 8, 5}).device, "cuda:5");
  EXPECT_EQ(device_for_rank("cuda", {9, 16, 1}).device, "cuda:1");  // second machine: LOCAL_RANK, not RANK
  EXPECT_EQ(device_for_rank("cpu", {1, 2, 1}).device, "cpu");
}

TEST(RankDevice, UnderTorchrunAnExplicitGpuIsRefused) {
  const RankDevice d = device_for_rank("cuda:0", {1, 2, 1});
  EXPECT_NE(d.refusal.find("\"cuda:0\" under torchrun with 2 ranks"), std::string::npos) << d.refusal;
  EXPECT_NE(d.refusal.find("write `device: cuda`"), std::string::npos) << d.refusal;
}

// Sets torchrun's variables for one test and restores the process's environment after it.
class TorchrunEnvironment : public ::testing::Test {
 protected:
  void SetUp() override {
    setenv("RANK", "3", 1);
    setenv("WORLD_SIZE", "4", 1);
    setenv("LOCAL_RANK", "1", 1);
  }
  void TearDown() override {
    for (const char* name : {"RANK", "WORLD_SIZE", "LOCAL_RANK"}) unsetenv(name);
  }
};

TEST_F(TorchrunEnvironment, EveryStageConfigReadsCudaAsTheLocalRanksGpu) {
  EXPECT_EQ(parse_runtime_options(Config::parse("device: cuda\n", "run.yaml")).device, "cuda:1");
  EXPECT_EQ(parse_runtime_options(Config::parse("device: cpu\n", "run.yaml")).device, "cpu");
  const RankLayout l = rank_layout_from_environment();
  EXPECT_EQ(l.rank, 3);
  EXPECT_EQ(l.world_size, 4);
  EXPECT_EQ(l.local_rank, 1);
}

TEST_F(TorchrunEnvironment, AnExplicitGpuFailsTheConfigNamingTheKey) {
  try {
    parse_runtime_options(Config::parse("device: cuda:2\n", "run.yaml"));
    FAIL() << "cuda:2 under torchrun was accepted";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("run.yaml: key \"device\" is \"cuda:2\" under torchrun with 4 ranks"), std::string::npos) << what;
  }
}

}  // namespace
}  // namespace foresight
