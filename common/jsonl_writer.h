#pragma once
#include <fstream>
#include <string>

#include "common/atomic_output.h"

namespace foresight {

// A JSON Lines output that appears under its name only after commit() (see AtomicOutput).
class JsonlWriter {
 public:
  explicit JsonlWriter(const std::string& path);
  void write(const std::string& line);
  void commit();

 private:
  AtomicOutput out_;
  std::ofstream stream_;
};

}  // namespace foresight
