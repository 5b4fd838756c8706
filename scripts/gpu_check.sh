#!/usr/bin/env bash
# On a GPU machine: build against that machine's own torch (python3's), with the Debian packages it
# lacks unpacked from .debs/ (scripts/fetch_debs.sh) into .deps/, then run the kernel tests and every
# kernel benchmark, and write kernels/RESULTS.md (machine, versions, test results, the tables).
#   scripts/gpu_check.sh [OUT_DIR]     # OUT_DIR gets RESULTS.md and the logs too (default: kernels/)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/kernels}
mkdir -p "$out"
python=${FORESIGHT_PYTHON:-python3}
deps=$root/.deps
if compgen -G "$root/.debs/*.deb" >/dev/null; then
  mkdir -p "$deps"
  for f in "$root"/.debs/*.deb; do dpkg -x "$f" "$deps"; done
  lib=$deps/usr/lib/x86_64-linux-gnu
  export CPATH=$deps/usr/include:$deps/usr/include/hdf5/serial${CPATH:+:$CPATH}
  export LIBRARY_PATH=$lib:$lib/hdf5/serial${LIBRARY_PATH:+:$LIBRARY_PATH}
  export LD_LIBRARY_PATH=$lib:$lib/hdf5/serial${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  prefix_args=(-DCMAKE_PREFIX_PATH="$deps/usr;$lib/cmake" -DGLOO_INCLUDE_DIR="$deps/usr/include"
               -DHDF5_C_INCLUDE_DIR="$deps/usr/include/hdf5/serial" -DHDF5_C_LIBRARY_hdf5="$lib/hdf5/serial/libhdf5.so"
               -DGTest_DIR="$lib/cmake/GTest")
else
  prefix_args=()
fi
build=${FORESIGHT_BUILD:-$root/build-gpu}
cmake -S "$root" -B "$build" -G Ninja -DFORESIGHT_PYTHON="$python" -DFORESIGHT_CUDA=ON "${prefix_args[@]}" \
  > "$out/gpu_configure.log" 2>&1 || { tail -40 "$out/gpu_configure.log"; exit 1; }
cmake --build "$build" -j "$(nproc)" > "$out/gpu_build.log" 2>&1 || { tail -60 "$out/gpu_build.log"; exit 1; }

# Every test that needs a GPU (the suites named *Gpu; *Cuda* for any test named after the device) and
# the kernels' CPU references beside them. 'Kernel*:*Kernel*' missed SelectCompactGpu.* and two of
# the three ScorerMlpGpu tests, whose names do not say "Kernel".
gpu_filter='*Gpu*:*Cuda*:Kernel*:ScorerMlp*:SelectCompact*'
tests_rc=0
"$build/bin/foresight-tests" --gtest_filter="$gpu_filter" > "$out/gpu_tests.log" 2>&1 || tests_rc=$?
"$build/bin/foresight-kernels" bench all > "$out/gpu_bench.log" 2>&1

{
  echo "# Kernel results"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "- machine: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)"
  echo "- nvcc: $(nvcc --version | tail -1)"
  echo "- torch: $("$python" -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda)')"
  echo "- architectures: $(grep -o 'architectures [0-9;]*' "$out/gpu_configure.log" | head -1)"
  echo
  echo "## Tests (foresight-tests --gtest_filter='$gpu_filter', exit $tests_rc)"
  echo
  echo '```'
  grep -E '^\[  (PASSED|FAILED|SKIPPED) |^\[==========\]|FAILED  \]' "$out/gpu_tests.log" || true
  echo '```'
  echo
  echo "## Benchmarks (foresight-kernels bench all)"
  echo
  echo '```'
  cat "$out/gpu_bench.log"
  echo '```'
} > "$out/RESULTS.md"
cat "$out/RESULTS.md"
exit "$tests_rc"
