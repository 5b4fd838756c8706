#include "common/output_guard.h"

#include <algorithm>
#include <filesystem>

#include "common/error.h"

namespace foresight {

namespace fs = std::filesystem;

namespace {

// `path` with symbolic links and "." / ".." resolved as far as it exists.
fs::path resolved(const std::string& path) {
  std::error_code ec;
  const fs::path p = fs::weakly_canonical(fs::absolute(path), ec);
  return ec ? fs::absolute(path).lexically_normal() : p;
}

bool same_file(const std::string& a, const std::string& b) {
  std::error_code ec;
  return fs::equivalent(a, b, ec) && !ec;
}

// Whether `inner` is `outer` or lies below it, component by component.
bool within(const fs::path& inner, const fs::path& outer) {
  auto i = inner.begin();
  for (auto o = outer.begin(); o != outer.end(); ++o, ++i) {
    if (o->empty()) continue;  // a trailing separator
    if (i == inner.end() || *i != *o) return false;
  }
  return true;
}

}  // namespace

void check_output_outside_inputs(const NamedPath& out, const std::vector<NamedPath>& inputs) {
  for (const NamedPath& in : inputs) {
    if (in.path.empty()) continue;
    if (same_file(out.path, in.path) || resolved(out.path) == resolved(in.path)) {
      throw Error(out.option + " " + out.path + " is the input " + in.option + ": refusing to overwrite it");
    }
    if (fs::is_directory(in.path) && within(resolved(out.path), resolved(in.path))) {
      throw Error(out.option + " " + out.path + " lies inside the input " + in.option + " " + in.path +
                  ": refusing to write there");
    }
  }
}

void check_new_output(const NamedPath& out, const std::vector<NamedPath>& inputs) {
  check_output_outside_inputs(out, inputs);
  std::error_code ec;
  if (fs::exists(fs::symlink_status(out.path, ec))) {
    throw Error(out.option + " " + out.path + " exists: refusing to overwrite it (remove it or choose another path)");
  }
}

}  // namespace foresight
