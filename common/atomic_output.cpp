#include "common/atomic_output.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "common/error.h"

namespace foresight {

namespace fs = std::filesystem;

AtomicOutput::AtomicOutput(std::string path)
    : path_(std::move(path)), temp_path_(path_ + ".tmp-" + std::to_string(::getpid())),
      on_signal_(temp_path_) {
  const fs::path parent = fs::path(path_).parent_path();
  if (!parent.empty() && !fs::is_directory(parent)) {
    throw Error("output directory does not exist: " + parent.string());
  }
}

AtomicOutput::~AtomicOutput() {
  if (!committed_) {
    std::error_code ignored;
    fs::remove_all(temp_path_, ignored);
  }
}

void AtomicOutput::commit() {
  std::error_code ec;
  if (fs::is_directory(path_) && fs::is_directory(temp_path_)) fs::remove_all(path_, ec);
  fs::rename(temp_path_, path_, ec);
  if (ec) throw Error("cannot move " + temp_path_ + " to " + path_ + ": " + ec.message());
  committed_ = true;
}

void remove_stale_temporaries(const std::string& dir) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    const std::size_t mark = name.rfind(".tmp-");
    if (mark == std::string::npos || mark + 5 == name.size()) continue;
    const std::string pid = name.substr(mark + 5);
    if (pid.find_first_not_of("0123456789") != std::string::npos || pid.size() > 9) continue;
    const auto id = static_cast<pid_t>(std::stol(pid));
    if (id == ::getpid() || ::kill(id, 0) == 0 || errno != ESRCH) continue;  // ours, or a live process's
    fs::remove_all(entry.path(), ec);
  }
}

}  // namespace foresight
