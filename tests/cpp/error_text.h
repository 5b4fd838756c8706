#pragma once
// The message of the foresight::Error a call throws, for tests that check what a refusal says.
#include <string>

#include "common/error.h"

namespace foresight::test_support {

// "no error" when `call` returns normally, so a find() on it fails the expectation.
template <class Call>
std::string error_text(Call&& call) {
  try {
    call();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace foresight::test_support
