#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace YAML {
class Node;
}

namespace foresight {

// A stage's YAML config after command-line overrides (`key=value`, dotted keys for nested maps;
// values parse as YAML scalars; an empty value is refused). A key that appears twice in one mapping is
// refused. Getters validate as they read and fail with an Error naming the
// file, the key, the value found and the value expected, so a bad config fails before any work.
class Config {
 public:
  static Config load(const std::string& path, const std::vector<std::string>& overrides);
  // A config from YAML text, such as yaml() of an earlier run; `source` names it in errors.
  static Config parse(const std::string& yaml, const std::string& source);

  bool has(const std::string& key) const;
  std::string string(const std::string& key) const;
  std::optional<std::string> optional_string(const std::string& key) const;
  // A list of scalars (`[a, b]` or a block list); `fallback` when the key is absent.
  std::vector<std::string> scalar_list(const std::string& key, const std::vector<std::string>& fallback) const;
  // scalar_list, where a single scalar is a list of one.
  std::vector<std::string> scalar_or_list(const std::string& key, const std::vector<std::string>& fallback) const;
  // scalar_list of non-negative integers (token ids, budgets); `what` names them in the error.
  std::vector<int64_t> non_negative_int_list(const std::string& key, const std::string& what) const;
  int64_t positive_int(const std::string& key) const;
  int64_t positive_int(const std::string& key, int64_t fallback) const;
  int64_t non_negative_int(const std::string& key, int64_t fallback) const;
  double positive_number(const std::string& key, double fallback) const;
  double non_negative_number(const std::string& key, double fallback) const;
  bool boolean(const std::string& key, bool fallback) const;
  std::string choice(const std::string& key, const std::vector<std::string>& allowed,
                     const std::string& fallback) const;

  // Refuses keys outside `allowed` (dotted paths; "a.*" allows any key under a), catching typos.
  void check_known_keys(const std::vector<std::string>& allowed) const;

  // Error naming this config and a key, for checks that span several keys.
  [[noreturn]] void fail(const std::string& key, const std::string& problem) const;

  // Every set leaf as dotted key -> its value in flow-style YAML ("[32, 64]"), to compare configs.
  std::map<std::string, std::string> leaves() const;

  std::string source() const { return source_; }
  std::string yaml() const;  // the resolved config, as stored beside outputs

 private:
  Config(std::string source, std::shared_ptr<YAML::Node> root);
  std::optional<YAML::Node> find(const std::string& key) const;
  std::string scalar(const std::string& key) const;
  double number(const std::string& key, double fallback, bool allow_zero) const;

  std::string source_;
  std::shared_ptr<YAML::Node> root_;
};

}  // namespace foresight
