#!/usr/bin/env bash
# On a GPU machine: build against that machine's own torch (python3's), with the Debian packages it
# lacks unpacked from .debs/ (scripts/fetch_debs.sh) into .deps/, then run
#   1. every GPU test and the kernels' CPU references (foresight-tests, filter below), with the
#      host syncs per eviction step that HostSyncCuda measures,
#   2. the end-to-end CUDA smoke test (tests/python/test_cuda_smoke.py: golden, SFT, GRPO, eval and
#      generation under eviction on cuda, compared with the CPU),
#   3. every kernel benchmark (foresight-kernels bench all),
#   4. compute-sanitizer memcheck and 5. racecheck on the kernel suites' GPU tests,
# and write kernels/RESULTS.md (machine, versions, each step's exit status and summary, the tables).
# A step that fails or times out is recorded there and the others still run; RESULTS.md is rewritten
# after every step, so a run cut short keeps what finished. The exit status is the first failure's.
#   scripts/gpu_check.sh [OUT_DIR]     # OUT_DIR gets RESULTS.md and the logs too (default: kernels/)
# Environment: FORESIGHT_PYTHON (python3), FORESIGHT_BUILD (build-gpu/), FORESIGHT_SANITIZER (found
# on PATH or in the CUDA toolkit), FORESIGHT_SANITIZER_FILTER, and per-step time limits in seconds:
# FORESIGHT_SMOKE_TIMEOUT (300), FORESIGHT_BENCH_TIMEOUT (300), FORESIGHT_SANITIZER_TIMEOUT (240 each).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/kernels}
mkdir -p "$out"
out=$(cd "$out" && pwd)
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

# Every test that needs a GPU (the suites named *Gpu; *Cuda* for any test named after the device) and
# the kernels' CPU references beside them. 'Kernel*:*Kernel*' missed SelectCompactGpu.* and two of
# the three ScorerMlpGpu tests, whose names do not say "Kernel".
gpu_filter='*Gpu*:*Cuda*:Kernel*:ScorerMlp*:SelectCompact*'
# The sanitizers run the GPU tests only (all of them are in tests/cpp/kernel_*_test.cpp): the CPU
# references launch nothing for them to check, and the whole check has to fit a short GPU loan.
sanitizer_filter=${FORESIGHT_SANITIZER_FILTER:-'*Gpu*'}
smoke_timeout=${FORESIGHT_SMOKE_TIMEOUT:-300}
bench_timeout=${FORESIGHT_BENCH_TIMEOUT:-300}
sanitizer_timeout=${FORESIGHT_SANITIZER_TIMEOUT:-240}

# Each step's status: "exit N", "timed out after Ns", "not run: why".
build_status="not run" tests_status="not run" smoke_status="not run" bench_status="not run"
memcheck_status="not run" racecheck_status="not run"
first_failure=0

status_of() {  # rc [limit]
  if [ -n "${2:-}" ] && { [ "$1" -eq 124 ] || [ "$1" -eq 137 ]; }; then echo "timed out after ${2}s"; else echo "exit $1"; fi
}
failed() { [ "$first_failure" -ne 0 ] || first_failure=$1; }

# compute-sanitizer ships with the CUDA toolkit (not on PATH by default), with the pip wheel
# nvidia-cuda-sanitizer-api, or in a Debian package unpacked into .deps/.
find_sanitizer() {
  if [ -n "${FORESIGHT_SANITIZER:-}" ]; then echo "$FORESIGHT_SANITIZER"; return; fi
  command -v compute-sanitizer 2>/dev/null && return
  local nvcc_dir="" candidate wheel
  nvcc_dir=$(dirname "$(command -v nvcc 2>/dev/null || echo /nonexistent/nvcc)")
  wheel=$("$python" -c 'import nvidia.cuda_sanitizer_api as m, os; print(os.path.dirname(m.__file__))' 2>/dev/null || true)
  for candidate in "${CUDA_HOME:-/nonexistent}/compute-sanitizer/compute-sanitizer" \
                   "${CUDA_HOME:-/nonexistent}/bin/compute-sanitizer" \
                   "$nvcc_dir/../compute-sanitizer/compute-sanitizer" "$nvcc_dir/compute-sanitizer" \
                   /usr/local/cuda/compute-sanitizer/compute-sanitizer /usr/local/cuda/bin/compute-sanitizer \
                   "${wheel:-/nonexistent}/compute-sanitizer/compute-sanitizer" "$deps/usr/bin/compute-sanitizer"; do
    if [ -x "$candidate" ]; then echo "$candidate"; return; fi
  done
  return 1
}

fenced() {  # file [grep pattern]: the file (or its first 80 lines matching the pattern) in a code block
  echo '```'
  if [ ! -f "$1" ]; then echo "(no log)"
  elif [ -n "${2:-}" ]; then
    grep -E "$2" "$1" | head -80 | grep . || echo "(no matching lines; see $(basename "$1"))"
  else cat "$1"; fi
  echo '```'
}

gtest_lines='^\[  (PASSED|FAILED|SKIPPED) |^\[==========\]|FAILED  \]'
sanitizer_lines='^========= (ERROR SUMMARY|RACECHECK SUMMARY|Invalid|Race|Error|Program hit|Warning)|'$gtest_lines

write_results() {
  {
    echo "# Kernel results"
    echo
    echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "- machine: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)"
    echo "- nvcc: $(nvcc --version 2>/dev/null | tail -1)"
    echo "- torch: $("$python" -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda)' 2>&1 | tail -1)"
    echo "- architectures: $(grep -o 'architectures [0-9;]*' "$out/gpu_configure.log" 2>/dev/null | head -1)"
    echo "- compute-sanitizer: ${sanitizer_version:-not found}"
    echo "- build: $build_status"
    echo
    echo "## Tests (foresight-tests --gtest_filter='$gpu_filter', $tests_status)"
    echo
    fenced "$out/gpu_tests.log" "$gtest_lines"
    echo
    echo "### Host syncs per eviction step (HostSyncCuda, tests/cpp/host_sync_cuda_test.cpp)"
    echo
    fenced "$out/gpu_tests.log" '^host syncs per eviction step|^path  |^(GRPO rollout|SFT step|teacher-forced|decoding, )'
    echo
    echo "## CUDA smoke test (pytest tests/python/test_cuda_smoke.py, $smoke_status)"
    echo
    fenced "$out/gpu_smoke.log" '::|^golden: |^E |^(PASSED|FAILED|ERROR|SKIPPED)|[Ww]arn|^=+ .*(passed|failed|skipped|error)'
    echo
    echo "## Benchmarks (foresight-kernels bench all, $bench_status)"
    echo
    fenced "$out/gpu_bench.log"
    echo
    echo "## compute-sanitizer memcheck (foresight-tests --gtest_filter='$sanitizer_filter', $memcheck_status)"
    echo
    fenced "$out/gpu_memcheck.log" "$sanitizer_lines"
    echo
    echo "## compute-sanitizer racecheck (foresight-tests --gtest_filter='$sanitizer_filter', $racecheck_status)"
    echo
    fenced "$out/gpu_racecheck.log" "$sanitizer_lines"
  } > "$out/RESULTS.md"
}

rm -f "$out"/gpu_{tests,smoke,bench,memcheck,racecheck}.log
sanitizer=$(find_sanitizer || true)
if [ -n "$sanitizer" ]; then
  sanitizer_version="$sanitizer ($("$sanitizer" --version 2>&1 | grep -i version | head -1))"
fi

rc=0
cmake -S "$root" -B "$build" -G Ninja -DFORESIGHT_PYTHON="$python" -DFORESIGHT_CUDA=ON "${prefix_args[@]}" \
  > "$out/gpu_configure.log" 2>&1 || rc=$?
if [ "$rc" -eq 0 ]; then
  cmake --build "$build" -j "$(nproc)" > "$out/gpu_build.log" 2>&1 || rc=$?
  if [ "$rc" -eq 0 ]; then build_status="ok"
  else build_status="build failed (exit $rc, gpu_build.log)"; tail -60 "$out/gpu_build.log"; fi
else
  build_status="configure failed (exit $rc, gpu_configure.log)"; tail -40 "$out/gpu_configure.log"
fi
if [ "$rc" -ne 0 ]; then write_results; cat "$out/RESULTS.md"; exit "$rc"; fi
write_results

# 1. The GPU tests.
rc=0
"$build/bin/foresight-tests" --gtest_filter="$gpu_filter" > "$out/gpu_tests.log" 2>&1 || rc=$?
tests_status=$(status_of "$rc"); [ "$rc" -eq 0 ] || failed "$rc"
write_results

# 2. The end-to-end smoke test (-s shows how many golden drop sets differ; -v each test's outcome and skip reason).
if "$python" -c 'import pytest' 2>/dev/null; then
  rc=0
  FORESIGHT_BIN="$build/bin" timeout -k 10 "$smoke_timeout" "$python" -m pytest -v -s -rs -p no:cacheprovider \
    "$root/tests/python/test_cuda_smoke.py" > "$out/gpu_smoke.log" 2>&1 || rc=$?
  smoke_status=$(status_of "$rc" "$smoke_timeout"); [ "$rc" -eq 0 ] || failed "$rc"
  # A skip is not a pass: on a GPU machine the smoke test must run.
  if grep -q 'test_cuda_matches_cpu SKIPPED' "$out/gpu_smoke.log"; then smoke_status="$smoke_status, SKIPPED"; failed 1; fi
else
  smoke_status="not run: $python has no pytest"; failed 1
fi
write_results

# 3. The benchmarks (line-buffered, so a run cut short keeps the tables it printed).
rc=0
line_buffered=(); if command -v stdbuf >/dev/null; then line_buffered=(stdbuf -oL -eL); fi
timeout -k 10 "$bench_timeout" "${line_buffered[@]}" "$build/bin/foresight-kernels" bench all > "$out/gpu_bench.log" 2>&1 || rc=$?
bench_status=$(status_of "$rc" "$bench_timeout"); [ "$rc" -eq 0 ] || failed "$rc"
write_results

# 4-5. compute-sanitizer on the kernel tests. Without the caching allocator every tensor is its own
# allocation, so memcheck sees an access past a tensor's end instead of inside a pooled block.
for tool in memcheck racecheck; do
  if [ -z "$sanitizer" ]; then
    declare "${tool}_status=not run: compute-sanitizer not found (set FORESIGHT_SANITIZER)"; failed 1; continue
  fi
  rc=0
  PYTORCH_NO_CUDA_MEMORY_CACHING=1 timeout -k 10 "$sanitizer_timeout" "$sanitizer" --tool "$tool" --error-exitcode 99 \
    --print-limit 50 "$build/bin/foresight-tests" --gtest_filter="$sanitizer_filter" > "$out/gpu_$tool.log" 2>&1 || rc=$?
  declare "${tool}_status=$(status_of "$rc" "$sanitizer_timeout")"; [ "$rc" -eq 0 ] || failed "$rc"
  write_results
done
write_results

cat "$out/RESULTS.md"
exit "$first_failure"
