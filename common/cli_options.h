#pragma once
// cxxopts helpers shared by the command mains.
#include <cstdlib>
// cxxopts splits vector values at commas, which would cut `policies=[a, b]` overrides apart; no
// option of ours takes a comma-separated list, so splitting is off (the unit separator never occurs).
#define CXXOPTS_VECTOR_DELIMITER '\x1f'
#include <cxxopts.hpp>
#include <functional>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "common/cli.h"
#include "common/config.h"
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

// A stage command's `--config FILE [key=value ...]`: adds both to `options` (beside whatever the
// caller added), parses, and loads the config with the overrides applied.
struct ConfigInvocation {
  Config config;
  cxxopts::ParseResult options;
};

inline ConfigInvocation parse_config_invocation(cxxopts::Options& options, int argc, char** argv) {
  options.add_options()("config", "YAML config", cxxopts::value<std::string>())(
      "overrides", "key=value overrides", cxxopts::value<std::vector<std::string>>()->default_value(""));
  options.parse_positional({"overrides"});
  options.positional_help("[key=value ...]");
  const auto r = parse_options(options, argc, argv);
  std::vector<std::string> overrides;
  for (const auto& s : r["overrides"].as<std::vector<std::string>>()) {
    if (!s.empty()) overrides.push_back(s);
  }
  return {Config::load(required<std::string>(r, "config"), overrides), r};
}

// `program <command> [options]`: no command or --help prints `usage`; an unknown command is an
// error. Each command gets argv from its own name on.
inline int dispatch(int argc, char** argv, const std::string& usage,
                    const std::map<std::string, std::function<void(int, char**)>>& commands) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    std::cout << usage;
    return argc < 2 ? 1 : 0;
  }
  return run_command([&] {
    const auto it = commands.find(argv[1]);
    if (it == commands.end()) throw Error("unknown command \"" + std::string(argv[1]) + "\"\n" + usage);
    it->second(argc - 1, argv + 1);
  });
}

}  // namespace foresight
