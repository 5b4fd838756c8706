#pragma once
// Checks that an output cannot destroy a user's data: an output path that exists is refused, and
// so is one that is (or lies inside) one of the command's inputs. Commands call these before any
// work, so a refused run writes nothing.
#include <string>
#include <vector>

namespace foresight {

// An input or output as the user named it: the option or config key, and the path.
struct NamedPath {
  std::string option;
  std::string path;
};

// Throws unless `out` is outside every input: not the same file or directory (hard and symbolic
// links included) and not inside an input directory.
void check_output_outside_inputs(const NamedPath& out, const std::vector<NamedPath>& inputs);

// check_output_outside_inputs, and throws when `out` exists at all: the command never replaces it.
void check_new_output(const NamedPath& out, const std::vector<NamedPath>& inputs);

}  // namespace foresight
