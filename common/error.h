#pragma once
#include <stdexcept>

namespace foresight {

// Every user-facing failure (bad input, bad config, bad checkpoint) is an Error whose message names
// the file, key or value at fault. Command mains print it and exit non-zero; nothing else catches it.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace foresight
