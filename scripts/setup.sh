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

# The foresightkv package (python/), installed as a copy rather than editable, as a user gets it.
# CI's fresh clones share this environment, so the stamp holds a hash of python/'s files (names and
# contents) and any difference from the installed copy reinstalls it. --no-deps: its dependencies
# are requirements.txt's. It builds offline with the environment's setuptools when that can make a
# wheel (setuptools >= 70.1, or the wheel package), else pip fetches a build backend into a throwaway
# environment (PyPI), leaving this one untouched.
pkg_stamp=$FORESIGHT_VENV/.foresight-python-package
pkg_hash=$(cd "$FORESIGHT_ROOT/python" &&
           find . -type f ! -path '*/__pycache__/*' ! -path '*.egg-info/*' ! -path './build/*' -print0 |
           LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
if [ ! -f "$pkg_stamp" ] || [ "$(cat "$pkg_stamp")" != "$pkg_hash" ]; then
  echo "setup: installing the foresightkv package from python/"
  build_dir=$(mktemp -d)
  cp -r "$FORESIGHT_ROOT/python/." "$build_dir"  # builds outside the checkout: no build/ or egg-info left in it
  isolation=()
  "$FORESIGHT_VENV/bin/python" -c 'import setuptools.command.bdist_wheel' 2>/dev/null ||
    "$FORESIGHT_VENV/bin/python" -c 'import wheel' 2>/dev/null || isolation=(--use-pep517)
  [ ${#isolation[@]} -gt 0 ] || isolation=(--no-build-isolation)
  "$FORESIGHT_VENV/bin/pip" install -q --disable-pip-version-check --no-deps "${isolation[@]}" \
    --force-reinstall "$build_dir"
  rm -rf "$build_dir"
  echo "$pkg_hash" > "$pkg_stamp"
fi
echo "setup: ok (Python environment: $FORESIGHT_VENV)"
