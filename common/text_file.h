#pragma once
// Text outputs whose failed writes (a full disk, a directory gone) are Errors naming the file. A
// std::ofstream only records a failure in its state, and buffered bytes reach the disk at flush
// or close, so every write here is flushed or closed and checked before it counts as done.
#include <fstream>
#include <string>

namespace foresight {

// Writes `text` to `path` (created or truncated); throws naming the file when any byte fails.
void write_text_file(const std::string& path, const std::string& text);

// Throws "cannot write PATH (reason)" unless `stream` is still good after flush and close.
void close_checked(std::ofstream& stream, const std::string& path);

// A log that lines are appended to one at a time (metrics.jsonl): each line is flushed and
// checked, so a line that returned is on disk and a failed one stops the run.
class LineLog {
 public:
  explicit LineLog(std::string path);
  void write(const std::string& line);

 private:
  std::string path_;
  std::ofstream stream_;
};

}  // namespace foresight
