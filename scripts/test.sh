#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test: C++ (GoogleTest through ctest) and Python
# (pytest, with transformers and h5py as the reference implementations).
set -euo pipefail
source "$(dirname "$0")/env.sh"
"$FORESIGHT_ROOT/scripts/setup.sh"
"$FORESIGHT_ROOT/scripts/build.sh"
# Two test processes at once fill both cores; a second intra-op thread each would only oversubscribe
# them (OpenMP's spinning threads then slow small-op code such as decoding many times over).
OMP_NUM_THREADS=1 ctest --test-dir "$FORESIGHT_BUILD" --output-on-failure -j 2
"$FORESIGHT_VENV/bin/python" -m pytest -q "$FORESIGHT_ROOT/tests/python"
