#!/usr/bin/env bash
# Installs what vbak needs, builds it twice and runs the tests: the plain build (RelWithDebInfo,
# -Werror: it catches warnings only the optimiser finds, and is what the demo and benches use)
# runs the unit tests and the end-to-end core (labels unit and plain); the AddressSanitizer +
# UBSan build, which checks more, runs every test (unit, integration, the file-level restore
# test). Then the fuzz targets, 15 s each.
# Exits non-zero when anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."

./deploy/install-deps.sh

jobs=$(nproc 2>/dev/null || echo 2)
# run_suite DIR "CTEST ARGS" CMAKE ARGS...
run_suite() {
  local dir=$1 select=$2; shift 2
  echo "== build $dir ($*)"
  cmake -S . -B "$dir" -DVB_WERROR=ON "$@"
  cmake --build "$dir" -j"$jobs"
  echo "== test $dir"
  # shellcheck disable=SC2086 # the selection is words
  (cd "$dir" && ctest --output-on-failure -j"$jobs" $select ${VB_CTEST_ARGS:-})
}

# Every integration test runs in the ASan/UBSan build; the plain build runs the unit tests and
# the end-to-end core (label plain: what only optimised code would show), not the whole suite
# twice.
run_suite build "-L unit|plain" -DCMAKE_BUILD_TYPE=RelWithDebInfo
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
  run_suite build-asan "" -DCMAKE_BUILD_TYPE=Debug -DVB_SANITIZE=ON
echo "== build build-fuzz (clang, libFuzzer + ASan/UBSan)"
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DVB_FUZZ=ON -DVB_TESTS=OFF -DVB_WERROR=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build-fuzz -j"$jobs"
echo "== fuzz (${VB_FUZZ_SECONDS:-15} s per target)"
tests/fuzz/run.sh build-fuzz "${VB_FUZZ_SECONDS:-15}"
echo "== all tests passed (plain and ASan/UBSan builds, fuzz targets)"
