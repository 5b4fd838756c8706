#include "common/atomic_output.h"

#include <unistd.h>

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

}  // namespace foresight
