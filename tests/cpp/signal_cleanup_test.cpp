#include "common/signal_cleanup.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "common/atomic_output.h"

namespace foresight {
namespace {

namespace fs = std::filesystem;

// Each death test runs its statement in a fresh copy of this binary (threadsafe style: LibTorch's
// thread pools make plain fork() unsafe), so the child installs the handler as a command would.
// Paths are fixed per test because the child's pid differs from the parent's.
fs::path fresh_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("foresight_test_signal_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

TEST(SignalCleanup, SigtermRemovesLiveTemporariesKeepsCommittedOutputsAndStillKills) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const fs::path dir = fresh_dir("term");
  EXPECT_EXIT(
      {
        AtomicOutput done((dir / "done.json").string());
        std::ofstream(done.temp_path()) << "{}";
        done.commit();
        AtomicOutput file((dir / "partial.json").string());
        std::ofstream(file.temp_path()) << "partial";
        AtomicOutput tree((dir / "checkpoint").string());
        fs::create_directories(fs::path(tree.temp_path()) / "sub");
        std::ofstream(fs::path(tree.temp_path()) / "weights") << "partial";
        std::ofstream(fs::path(tree.temp_path()) / "sub" / "more") << "partial";
        ::raise(SIGTERM);
        std::_Exit(0);  // not reached: the default action ends the process
      },
      testing::KilledBySignal(SIGTERM), "");
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(dir)) left.push_back(e.path().filename().string());
  EXPECT_EQ(left, std::vector<std::string>{"done.json"});
  fs::remove_all(dir);
}

// The hold must cover every thread: a signal taken by a worker thread (as LibTorch's or OpenMP's
// can be) is deferred too, the guarded work finishes, and the signal ends the process afterwards.
TEST(SignalCleanup, SignalsDeferredHoldsASignalTakenByAnotherThreadUntilItEnds) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const fs::path dir = fresh_dir("deferred");
  EXPECT_EXIT(
      {
        AtomicOutput out((dir / "out").string());
        std::ofstream(out.temp_path()) << "partial";
        {
          SignalsDeferred held;
          std::thread([] { ::pthread_kill(::pthread_self(), SIGINT); }).join();
          ::kill(::getpid(), SIGTERM);  // process-directed: any thread may take it
          ::usleep(100000);
          std::ofstream(dir / "finished") << "the guarded work ran to its end";
        }
        std::_Exit(0);  // not reached: the deferred signal is raised when the hold ends
      },
      testing::KilledBySignal(SIGINT), "");
  EXPECT_TRUE(fs::exists(dir / "finished"));
  EXPECT_FALSE(fs::exists(dir / "out"));
  for (const auto& e : fs::directory_iterator(dir)) EXPECT_EQ(e.path().filename(), "finished");
  fs::remove_all(dir);
}

TEST(SignalCleanup, AnIgnoredSignalStaysIgnored) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        ::signal(SIGINT, SIG_IGN);  // as a shell does for a background job
        AtomicOutput out((fs::temp_directory_path() / "foresight_test_signal_ignored").string());
        ::raise(SIGINT);
        std::_Exit(3);
      },
      testing::ExitedWithCode(3), "");
}

}  // namespace
}  // namespace foresight
