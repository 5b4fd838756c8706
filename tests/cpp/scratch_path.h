#pragma once
// A temp path that belongs to the running test case. ctest runs each case as its own process, two
// at a time, so cases that wrote one fixed path could read each other's file.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

namespace foresight::test_support {

inline std::string scratch_path(const std::string& name) {
  const ::testing::TestInfo* test = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string id = std::string(test->test_suite_name()) + "." + test->name();
  for (char& c : id) {
    if (c == '/') c = '_';  // parametrised cases are named Suite/Case/N
  }
  return (std::filesystem::temp_directory_path() / ("foresight_" + id + "_" + name)).string();
}

}  // namespace foresight::test_support
