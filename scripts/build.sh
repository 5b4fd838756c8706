#!/usr/bin/env bash
# Configures and builds everything into build/ (commands land in build/bin/).
set -euo pipefail
source "$(dirname "$0")/env.sh"
# Torch's CMake config warns about things that do not concern us (kineto, CUDA architectures);
# the log is shown only when configuring fails.
mkdir -p "$FORESIGHT_BUILD"
# Runs started side by side (scripts/demo.sh for several seeds at once) take turns here: two cmake
# configures of one build tree at once fail.
exec 9>"$FORESIGHT_BUILD/.build.lock"
flock 9
cmake -S "$FORESIGHT_ROOT" -B "$FORESIGHT_BUILD" -G Ninja \
  -DFORESIGHT_PYTHON="$FORESIGHT_VENV/bin/python" "$@" >"$FORESIGHT_BUILD/configure.log" 2>&1 \
  || { cat "$FORESIGHT_BUILD/configure.log"; exit 1; }
cmake --build "$FORESIGHT_BUILD"
