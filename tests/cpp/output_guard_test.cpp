#include "common/output_guard.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/error.h"

namespace foresight {
namespace {

namespace fs = std::filesystem;

std::string error_of(const NamedPath& out, const std::vector<NamedPath>& inputs, bool must_be_new) {
  try {
    must_be_new ? check_new_output(out, inputs) : check_output_outside_inputs(out, inputs);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

class OutputGuard : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("foresight_output_guard_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "model");
    std::ofstream(dir_ / "traces.jsonl") << "{}\n";
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string at(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

TEST_F(OutputGuard, TheInputUnderAnyOfItsNamesIsRefused) {
  const std::vector<NamedPath> inputs = {{"--traces", at("traces.jsonl")}, {"--model", at("model")}};
  fs::create_symlink(dir_ / "traces.jsonl", dir_ / "link.jsonl");
  fs::create_hard_link(dir_ / "traces.jsonl", dir_ / "hard.jsonl");
  for (const std::string& name : {"traces.jsonl", "link.jsonl", "hard.jsonl", "model/../traces.jsonl"}) {
    EXPECT_NE(error_of({"--out", at(name)}, inputs, false).find("is the input --traces"), std::string::npos) << name;
  }
  EXPECT_NE(error_of({"--out", at("model/")}, inputs, false).find("is the input --model"), std::string::npos);
  EXPECT_NE(error_of({"--out", at("model/sub/x.jsonl")}, inputs, false).find("lies inside the input --model"),
            std::string::npos);
  // A sibling whose name starts like the input directory's is outside it.
  EXPECT_EQ(error_of({"--out", at("model2/x.jsonl")}, inputs, false), "");
  EXPECT_EQ(error_of({"--out", at("new.jsonl")}, inputs, true), "");
}

TEST_F(OutputGuard, AnExistingOutputIsRefusedOnlyWhenItMustBeNew) {
  std::ofstream(dir_ / "old.jsonl") << "data\n";
  EXPECT_NE(error_of({"--out", at("old.jsonl")}, {}, true).find("exists: refusing to overwrite it"), std::string::npos);
  EXPECT_EQ(error_of({"--out", at("old.jsonl")}, {}, false), "");
  fs::create_symlink(dir_ / "nowhere", dir_ / "dangling");
  EXPECT_NE(error_of({"--out", at("dangling")}, {}, true).find("exists"), std::string::npos);
}

}  // namespace
}  // namespace foresight
