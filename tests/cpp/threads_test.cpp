#include "common/threads.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

namespace foresight {
namespace {

// The kernel's own account of the affinity mask, "Cpus_allowed_list:\t0-3,8,10-11", counted by hand.
int cpus_in_proc_status() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("Cpus_allowed_list:", 0) != 0) continue;
    std::stringstream ranges(line.substr(line.find(':') + 1));
    int count = 0;
    std::string range;
    while (std::getline(ranges, range, ',')) {
      const std::size_t dash = range.find('-');
      count += dash == std::string::npos ? 1 : std::stoi(range.substr(dash + 1)) - std::stoi(range.substr(0, dash)) + 1;
    }
    return count;
  }
  return -1;
}

TEST(ThreadDefaults, AllowedCpusCountsTheAffinityMask) { EXPECT_EQ(allowed_cpus(), cpus_in_proc_status()); }

TEST(ThreadDefaults, TheDefaultIsTheSmallerOfPhysicalCoresAndAllowedCpus) {
  EXPECT_EQ(default_thread_count(32, 2), 2);  // pinned to 2 cores of a 32-core machine
  EXPECT_EQ(default_thread_count(2, 4), 2);   // 2 physical cores with hyperthreads: 4 logical CPUs
  EXPECT_EQ(default_thread_count(8, 8), 8);
  EXPECT_EQ(default_thread_count(0, 3), 1);   // never fewer than one
}

}  // namespace
}  // namespace foresight
