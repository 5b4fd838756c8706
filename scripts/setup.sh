#!/usr/bin/env bash
# Installs what a fresh machine lacks: Debian packages and the pinned Python environment.
# A second run finds everything in place and returns in seconds.
set -euo pipefail
source "$(dirname "$0")/env.sh"

# libgloo-dev: only the headers that torch's ProcessGroupGloo.hpp includes (rl/collective.cpp);
# the Gloo code itself is the copy inside libtorch_cpu.
apt_packages=(cmake ninja-build ccache g++ pkg-config libhdf5-dev libyaml-cpp-dev libcxxopts-dev
              nlohmann-json3-dev libgtest-dev libgloo-dev)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo_cmd=(); [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The stamp records which requirements.txt the environment was built from.
stamp=$FORESIGHT_VENV/.foresight-requirements
if [ ! -f "$stamp" ] || ! cmp -s "$stamp" "$FORESIGHT_ROOT/requirements.txt"; then
  echo "setup: creating Python environment in $FORESIGHT_VENV (torch is a large download)"
  [ -x "$FORESIGHT_VENV/bin/python" ] || python3 -m venv "$FORESIGHT_VENV"
  "$FORESIGHT_VENV/bin/pip" install -q --disable-pip-version-check -r "$FORESIGHT_ROOT/requirements.txt"
  cp "$FORESIGHT_ROOT/requirements.txt" "$stamp"
fi
echo "setup: ok (Python environment: $FORESIGHT_VENV)"
