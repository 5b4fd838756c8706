#!/usr/bin/env bash
# Fetches, on a machine with apt, the Debian packages the build needs as .deb files into .debs/, for
# a GPU machine that cannot install packages (scripts/gpu_check.sh unpacks them there). Headers,
# the libraries the build links and what those load at run time.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .debs
cd .debs
apt-get download libhdf5-dev libhdf5-103-1 libhdf5-hl-100 libsz2 libaec0 libcurl3-gnutls libyaml-cpp-dev \
  libyaml-cpp0.7 libcxxopts-dev nlohmann-json3-dev libgtest-dev libgloo-dev 2>&1 | grep -v '^W: Download is performed unsandboxed' || true
ls -la
