#include "common/text_file.h"

#include <cerrno>
#include <cstring>

#include "common/error.h"

namespace foresight {

namespace {

// The stream does not say why it failed; errno of the failed call usually does (ENOSPC).
[[noreturn]] void fail(const std::string& path) {
  const int err = errno;
  throw Error("cannot write " + path + (err ? " (" + std::string(std::strerror(err)) + ")" : std::string()));
}

}  // namespace

void close_checked(std::ofstream& stream, const std::string& path) {
  errno = 0;
  stream.flush();
  if (stream.is_open()) stream.close();
  if (!stream) fail(path);
}

void write_text_file(const std::string& path, const std::string& text) {
  errno = 0;
  std::ofstream f(path);
  if (!f) fail(path);
  f << text;
  close_checked(f, path);
}

LineLog::LineLog(std::string path) : path_(std::move(path)) {
  errno = 0;
  stream_.open(path_, std::ios::app);
  if (!stream_) fail(path_);
}

void LineLog::write(const std::string& line) {
  errno = 0;
  stream_ << line << '\n';
  stream_.flush();
  if (!stream_) fail(path_);
}

}  // namespace foresight
