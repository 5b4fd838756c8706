#!/usr/bin/env bash
# Configures and builds everything into build/ (commands land in build/bin/).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cmake -S "$FORESIGHT_ROOT" -B "$FORESIGHT_BUILD" -G Ninja \
  -DFORESIGHT_PYTHON="$FORESIGHT_VENV/bin/python" "$@" >/dev/null
cmake --build "$FORESIGHT_BUILD"
