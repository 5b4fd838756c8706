#pragma once
// cxxopts helpers shared by the command mains.
#include <cstdlib>
#include <cxxopts.hpp>
#include <iostream>
#include <string>

#include "common/error.h"

namespace foresight {

// Parses a subcommand's options; --help prints them and exits 0, a bad option is an Error.
inline cxxopts::ParseResult parse_options(cxxopts::Options& options, int argc, char** argv) {
  options.add_options()("h,help", "show this help");
  cxxopts::ParseResult result;
  try {
    result = options.parse(argc, argv);
  } catch (const cxxopts::exceptions::exception& e) {
    throw Error(std::string(e.what()) + " (see --help)");
  }
  if (result.count("help")) {
    std::cout << options.help() << std::endl;
    std::exit(0);
  }
  return result;
}

template <typename T>
T required(const cxxopts::ParseResult& r, const std::string& name) {
  if (!r.count(name)) throw Error("option --" + name + " is required (see --help)");
  return r[name].as<T>();
}

}  // namespace foresight
