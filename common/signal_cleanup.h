#pragma once
#include <string>

namespace foresight {

// SIGINT, SIGTERM and SIGHUP end a command as they always did (default disposition, same exit
// status), but first remove the temporary outputs registered here. The handler is installed on
// first use, and only for signals whose disposition is still the default (a signal a shell set to
// be ignored stays ignored).

// Registers a temporary file or directory for removal if the process is killed by one of those
// signals while this guard lives. Removing it on the ordinary path stays the owner's job.
class RemovedOnSignal {
 public:
  explicit RemovedOnSignal(const std::string& path);
  ~RemovedOnSignal();
  RemovedOnSignal(const RemovedOnSignal&) = delete;
  RemovedOnSignal& operator=(const RemovedOnSignal&) = delete;

 private:
  int slot_;  // -1 when the registry was full or the path too long: then nothing is removed
};

// Defers those signals, in every thread of the process, for its lifetime: one that arrives
// meanwhile is recorded and re-raised when the last SignalsDeferred ends. A blocked signal mask
// (pthread_sigmask) would not do: it is per thread, and a process-directed signal goes to any
// thread that does not block it, such as LibTorch's or OpenMP's workers, whose default action
// ends the process mid-write. The handler is process-wide, so whichever thread takes the
// signal only records it.
class SignalsDeferred {
 public:
  SignalsDeferred();
  ~SignalsDeferred();
  SignalsDeferred(const SignalsDeferred&) = delete;
  SignalsDeferred& operator=(const SignalsDeferred&) = delete;
};

}  // namespace foresight
