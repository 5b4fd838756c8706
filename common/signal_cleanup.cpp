#include "common/signal_cleanup.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <cstring>
#include <mutex>

namespace foresight {

namespace {

// The registry is a fixed array of path buffers, so the handler reads only memory that is never
// freed and allocates nothing. A slot is free (0), being filled or emptied (1), or live (2); the
// handler removes live slots only.
struct Slot {
  std::atomic<int> state{0};
  char path[PATH_MAX];
};
constexpr int kSlots = 32;  // temporaries alive at once; a command has a handful
Slot slots[kSlots];

constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP};
std::atomic<int> held{0};     // live SignalsDeferred guards
std::atomic<int> pending{0};  // the first signal that arrived while held

// Removes `path`, a file or a directory tree, with system calls only (async-signal-safe:
// opendir/readdir allocate, so directories are listed with getdents64 into a stack buffer).
// Our temporary directories are shallow; `depth` bounds the stack use anyway.
void remove_tree(int dir_fd, const char* path, int depth) {
  if (::unlinkat(dir_fd, path, 0) == 0 || depth == 0) return;
  const int fd = ::openat(dir_fd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return;
  alignas(8) char buf[2048];
  // Each pass lists the directory from the start; entries vanish as they are removed.
  for (bool removed = true; removed;) {
    removed = false;
    ::lseek(fd, 0, SEEK_SET);
    long n;
    while ((n = ::syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0) {
      for (long off = 0; off < n;) {
        const auto* entry = reinterpret_cast<const struct dirent64*>(buf + off);
        off += entry->d_reclen;
        const char* name = entry->d_name;
        if (std::strcmp(name, ".") == 0 || std::strcmp(name, "..") == 0) continue;
        remove_tree(fd, name, depth - 1);
        removed = true;
      }
    }
  }
  ::close(fd);
  ::unlinkat(dir_fd, path, AT_REMOVEDIR);
}

// Removes every live temporary, restores the default action and raises the signal again, so the
// process ends as it would have without us (a shell sees "killed by SIGINT").
void die(int sig) {
  for (Slot& s : slots) {
    if (s.state.load() == 2) remove_tree(AT_FDCWD, s.path, 4);
  }
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  ::sigaction(sig, &dfl, nullptr);
  ::raise(sig);  // blocked while the handler runs; delivered, with the default action, on return
}

void on_signal(int sig) {
  if (held.load() > 0) {
    int none = 0;
    pending.compare_exchange_strong(none, sig);  // the first one counts
    // If the last guard ended between the two loads, it may have missed `pending`: whichever of
    // us exchanges it first acts on it.
    if (held.load() > 0) return;
    sig = pending.exchange(0);
    if (sig == 0) return;
  }
  die(sig);
}

void install_handler() {
  static std::once_flag once;
  std::call_once(once, [] {
    for (int sig : kSignals) {
      struct sigaction old {};
      ::sigaction(sig, nullptr, &old);
      if (old.sa_handler != SIG_DFL) continue;  // ignored by the shell (nohup, &) or handled by someone else
      struct sigaction act {};
      act.sa_handler = on_signal;
      sigemptyset(&act.sa_mask);
      act.sa_flags = SA_RESTART;  // interrupted reads and writes resume instead of failing with EINTR
      ::sigaction(sig, &act, nullptr);
    }
  });
}

}  // namespace

RemovedOnSignal::RemovedOnSignal(const std::string& path) : slot_(-1) {
  install_handler();
  if (path.size() >= PATH_MAX) return;
  for (int i = 0; i < kSlots; ++i) {
    int expected = 0;
    if (slots[i].state.compare_exchange_strong(expected, 1)) {
      std::memcpy(slots[i].path, path.c_str(), path.size() + 1);
      slots[i].state.store(2);
      slot_ = i;
      return;
    }
  }
}

RemovedOnSignal::~RemovedOnSignal() {
  if (slot_ >= 0) slots[slot_].state.store(0);
}

SignalsDeferred::SignalsDeferred() {
  install_handler();
  held.fetch_add(1);
}

SignalsDeferred::~SignalsDeferred() {
  held.fetch_sub(1);
  if (held.load() == 0) {
    if (const int sig = pending.exchange(0)) die(sig);
  }
}

}  // namespace foresight
