#include "common/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <sstream>

#include "common/error.h"

namespace foresight {

namespace {

std::vector<std::string> split_key(const std::string& key) {
  std::vector<std::string> parts;
  std::stringstream ss(key);
  for (std::string part; std::getline(ss, part, '.');) parts.push_back(part);
  return parts;
}

// yaml-cpp nodes are references: operator= on a node writes through to the tree, so walking uses
// reset() and writing assigns through a freshly indexed node.
void set_path(YAML::Node node, const std::vector<std::string>& parts, std::size_t i, const YAML::Node& value) {
  if (i + 1 == parts.size()) {
    node[parts[i]] = value;
    return;
  }
  if (!node[parts[i]] || !node[parts[i]].IsMap()) node[parts[i]] = YAML::Node(YAML::NodeType::Map);
  set_path(node[parts[i]], parts, i + 1, value);
}

void collect_leaves(const YAML::Node& node, const std::string& prefix, std::vector<std::string>& out) {
  if (!node.IsMap()) {
    out.push_back(prefix);
    return;
  }
  for (const auto& kv : node) {
    const std::string key = kv.first.as<std::string>();
    collect_leaves(kv.second, prefix.empty() ? key : prefix + "." + key, out);
  }
}

// yaml-cpp keeps every pair of a mapping that repeats a key, and lookups see only the first, so a
// second `lr:` further down a file would be silently ignored.
void check_unique_keys(const YAML::Node& node, const std::string& prefix, const std::string& source) {
  if (node.IsSequence()) {
    for (const auto& item : node) check_unique_keys(item, prefix, source);
    return;
  }
  if (!node.IsMap()) return;
  std::vector<std::string> seen;
  for (const auto& kv : node) {
    const std::string key = kv.first.Scalar();
    const std::string path = prefix.empty() ? key : prefix + "." + key;
    if (std::find(seen.begin(), seen.end(), key) != seen.end()) {
      throw Error(source + ": key \"" + path + "\" appears twice; keep one");
    }
    seen.push_back(key);
    check_unique_keys(kv.second, path, source);
  }
}

// A parsed document as a config root: null is an empty mapping, anything else must be a mapping.
std::shared_ptr<YAML::Node> config_root(YAML::Node node, const std::string& source) {
  if (node.IsNull()) node = YAML::Node(YAML::NodeType::Map);
  if (!node.IsMap()) throw Error(source + ": expected a mapping of keys to values");
  check_unique_keys(node, "", source);
  return std::make_shared<YAML::Node>(node);
}

}  // namespace

Config::Config(std::string source, std::shared_ptr<YAML::Node> root)
    : source_(std::move(source)), root_(std::move(root)) {}

Config Config::load(const std::string& path, const std::vector<std::string>& overrides) {
  YAML::Node document;
  try {
    document = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    throw Error("cannot read config " + path);
  } catch (const YAML::Exception& e) {
    throw Error(path + ": not valid YAML (" + e.what() + ")");
  }
  const auto root = config_root(document, path);
  for (const std::string& o : overrides) {
    const auto eq = o.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw Error("override \"" + o + "\" is not of the form key=value");
    }
    // An empty value would parse as null, which every getter reads as "absent": the built-in
    // default would replace the config file's value without a word.
    if (o.find_first_not_of(" \t", eq + 1) == std::string::npos) {
      throw Error("override \"" + o + "\" has no value (give one, or leave the key out to keep the config's)");
    }
    YAML::Node value;
    try {
      value = YAML::Load(o.substr(eq + 1));
    } catch (const YAML::Exception&) {
      value = YAML::Node(o.substr(eq + 1));
    }
    set_path(*root, split_key(o.substr(0, eq)), 0, value);
  }
  return Config(path, root);
}

Config Config::parse(const std::string& yaml, const std::string& source) {
  try {
    return Config(source, config_root(YAML::Load(yaml), source));
  } catch (const YAML::Exception& e) {
    throw Error(source + ": not valid YAML (" + e.what() + ")");
  }
}

std::optional<YAML::Node> Config::find(const std::string& key) const {
  YAML::Node cur;
  cur.reset(*root_);
  for (const std::string& part : split_key(key)) {
    if (!cur.IsMap()) return std::nullopt;
    const YAML::Node& parent = cur;
    const YAML::Node next = parent[part];
    if (!next.IsDefined() || next.IsNull()) return std::nullopt;
    cur.reset(next);
  }
  return cur;
}

void Config::fail(const std::string& key, const std::string& problem) const {
  throw Error(source_ + ": key \"" + key + "\" " + problem);
}

bool Config::has(const std::string& key) const { return find(key).has_value(); }

std::string Config::scalar(const std::string& key) const {
  const auto node = find(key);
  if (!node) fail(key, "is missing");
  if (!node->IsScalar()) fail(key, "must be a single value, not a list or mapping");
  return node->Scalar();
}

std::string Config::string(const std::string& key) const {
  if (!has(key)) fail(key, "is missing (expected a string)");
  return scalar(key);
}

std::optional<std::string> Config::optional_string(const std::string& key) const {
  if (!has(key)) return std::nullopt;
  return scalar(key);
}

std::vector<std::string> Config::scalar_or_list(const std::string& key,
                                                const std::vector<std::string>& fallback) const {
  const auto node = find(key);
  if (node && node->IsScalar()) return {node->Scalar()};
  return scalar_list(key, fallback);
}

std::vector<std::string> Config::scalar_list(const std::string& key, const std::vector<std::string>& fallback) const {
  const auto node = find(key);
  if (!node) return fallback;
  if (!node->IsSequence() || node->size() == 0) fail(key, "must be a non-empty list, e.g. [a, b]");
  std::vector<std::string> out;
  for (const YAML::Node& item : *node) {
    if (!item.IsScalar()) fail(key, "must list single values, not lists or mappings");
    out.push_back(item.Scalar());
  }
  return out;
}

std::vector<int64_t> Config::non_negative_int_list(const std::string& key, const std::string& what) const {
  std::vector<int64_t> ids;
  for (const std::string& item : scalar_list(key, {})) {
    try {
      std::size_t used = 0;
      const int64_t id = std::stoll(item, &used);
      if (used != item.size() || id < 0) throw std::invalid_argument(item);
      ids.push_back(id);
    } catch (const std::logic_error&) {
      fail(key, "has \"" + item + "\", expected " + what + " (non-negative integers)");
    }
  }
  return ids;
}

namespace {

int64_t integer_at_least(const Config& c, const std::optional<YAML::Node>& node, const std::string& key,
                         const std::string& text, int64_t minimum, const char* expected) {
  int64_t value = 0;
  try {
    value = node->as<int64_t>();
  } catch (const YAML::Exception&) {
    c.fail(key, "is \"" + text + "\", expected " + expected);
  }
  if (value < minimum) c.fail(key, "is " + text + ", expected " + expected);
  return value;
}

}  // namespace

int64_t Config::positive_int(const std::string& key) const {
  if (!has(key)) fail(key, "is missing (expected a positive integer)");
  return integer_at_least(*this, find(key), key, scalar(key), 1, "a positive integer");
}

int64_t Config::non_negative_int(const std::string& key, int64_t fallback) const {
  if (!has(key)) return fallback;
  return integer_at_least(*this, find(key), key, scalar(key), 0, "a non-negative integer");
}

int64_t Config::positive_int(const std::string& key, int64_t fallback) const {
  return has(key) ? positive_int(key) : fallback;
}

double Config::number(const std::string& key, double fallback, bool allow_zero) const {
  const char* expected = allow_zero ? "a non-negative number" : "a positive number";
  if (!has(key)) return fallback;
  const std::string text = scalar(key);
  double value = 0;
  try {
    value = find(key)->as<double>();
  } catch (const YAML::Exception&) {
    fail(key, "is \"" + text + "\", expected " + expected);
  }
  if (!(allow_zero ? value >= 0 : value > 0) || !std::isfinite(value)) fail(key, "is " + text + ", expected " + expected);
  return value;
}

double Config::positive_number(const std::string& key, double fallback) const { return number(key, fallback, false); }

double Config::non_negative_number(const std::string& key, double fallback) const { return number(key, fallback, true); }

bool Config::boolean(const std::string& key, bool fallback) const {
  if (!has(key)) return fallback;
  const std::string text = scalar(key);
  try {
    return find(key)->as<bool>();
  } catch (const YAML::Exception&) {
    fail(key, "is \"" + text + "\", expected true or false");
  }
}

std::string Config::choice(const std::string& key, const std::vector<std::string>& allowed,
                           const std::string& fallback) const {
  const std::string value = has(key) ? scalar(key) : fallback;
  if (std::find(allowed.begin(), allowed.end(), value) == allowed.end()) {
    std::string list;
    for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
    fail(key, "is \"" + value + "\", expected one of: " + list);
  }
  return value;
}

void Config::check_known_keys(const std::vector<std::string>& allowed) const {
  std::vector<std::string> leaves;
  collect_leaves(*root_, "", leaves);
  for (const std::string& leaf : leaves) {
    const bool known = std::any_of(allowed.begin(), allowed.end(), [&](const std::string& a) {
      return a == leaf || (a.size() > 2 && a.substr(a.size() - 2) == ".*" &&
                           leaf.rfind(a.substr(0, a.size() - 1), 0) == 0);
    });
    if (!known) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      fail(leaf, "is not a known key (known: " + list + ")");
    }
  }
}

std::map<std::string, std::string> Config::leaves() const {
  std::vector<std::string> keys;
  collect_leaves(*root_, "", keys);
  std::map<std::string, std::string> out;
  for (const std::string& key : keys) {
    const auto node = find(key);
    if (!node) continue;  // a null value is an absent key to every getter
    YAML::Emitter value;
    value << YAML::Flow << *node;
    out[key] = value.c_str();
  }
  return out;
}

std::string Config::yaml() const {
  YAML::Emitter out;
  out << *root_;
  return out.c_str();
}

}  // namespace foresight
