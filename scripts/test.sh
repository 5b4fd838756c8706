#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test: C++ (GoogleTest through ctest) and Python
# (pytest, with transformers and h5py as the reference implementations).
set -euo pipefail
source "$(dirname "$0")/env.sh"
"$FORESIGHT_ROOT/scripts/setup.sh"
"$FORESIGHT_ROOT/scripts/build.sh"
ctest --test-dir "$FORESIGHT_BUILD" --output-on-failure -j 2
"$FORESIGHT_VENV/bin/python" -m pytest -q "$FORESIGHT_ROOT/tests/python"
