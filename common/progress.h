#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace foresight {

// A one-line progress bar with rate and ETA on stderr. It draws only when stderr is a terminal,
// so logs and CI output stay clean.
class ProgressBar {
 public:
  ProgressBar(std::string label, int64_t total, std::string unit);
  ~ProgressBar();
  void advance(int64_t n = 1);
  void finish();
  // A line of log above the bar (or on its own when there is no bar).
  void note(const std::string& line);

 private:
  void draw(bool final);

  std::string label_;
  std::string unit_;
  int64_t total_;
  int64_t done_ = 0;
  bool enabled_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace foresight
