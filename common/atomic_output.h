#pragma once
#include <string>

#include "common/signal_cleanup.h"

namespace foresight {

// An output file that appears under its real name only when complete. Writers write to temp_path();
// commit() renames it into place. If the writer fails or throws first, the destructor removes the
// temporary, so a failed run never leaves a partial file behind under the name a user expects;
// SIGINT, SIGTERM and SIGHUP remove it too (common/signal_cleanup.h).
class AtomicOutput {
 public:
  explicit AtomicOutput(std::string path);
  ~AtomicOutput();
  AtomicOutput(const AtomicOutput&) = delete;
  AtomicOutput& operator=(const AtomicOutput&) = delete;

  const std::string& temp_path() const { return temp_path_; }
  const std::string& path() const { return path_; }
  void commit();

 private:
  std::string path_;
  std::string temp_path_;
  RemovedOnSignal on_signal_;
  bool committed_ = false;
};

// Removes the temporaries (`NAME.tmp-PID`) in `dir` whose process is gone: a run killed with
// SIGKILL cannot remove its own. One of a live process (a run still writing) is left alone.
void remove_stale_temporaries(const std::string& dir);

}  // namespace foresight
