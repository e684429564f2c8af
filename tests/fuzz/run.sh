#!/usr/bin/env bash
# run.sh BUILD_DIR [SECONDS]: runs every fuzz target of BUILD_DIR (configured with -DVB_FUZZ=ON)
# for SECONDS each (default 20) from its seed corpus (tests/fuzz/corpus/TARGET, with
# TARGET.dict when there is one), after replaying its regression inputs
# (tests/fuzz/regressions/TARGET). Prints one line per target: executions, executions per
# second, coverage (edges) and features, and the result. Fails on any crash, leak, timeout or
# sanitizer report, keeping the input that caused it and the log in $VB_FUZZ_KEEP (default
# BUILD_DIR/fuzz-findings). New corpus entries go to a scratch directory, never the source tree.
set -euo pipefail
(($# >= 1)) || { echo "usage: run.sh BUILD_DIR [SECONDS]" >&2; exit 2; }
build=$(cd "$1" && pwd)
secs=${2:-20}
src=$(cd "$(dirname "$0")" && pwd)
keep=${VB_FUZZ_KEEP:-$build/fuzz-findings}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

targets=("$build"/fuzz/fuzz_*)
[[ -x ${targets[0]} ]] || { echo "run.sh: no fuzz targets in $build/fuzz" >&2; exit 2; }
status=0
printf '%-16s %10s %8s %7s %7s %s\n' target executions exec/s cov ft result
for t in "${targets[@]}"; do
  name=$(basename "$t")
  dir=$work/$name
  mkdir -p "$dir/corpus" "$dir/artifacts"
  args=(-timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$dir/artifacts/")
  [[ -f $src/$name.dict ]] && args+=(-dict="$src/$name.dict")
  result=ok
  if [[ -d $src/regressions/$name ]] &&
    ! "$t" "${args[@]}" "$src/regressions/$name"/* >"$dir/regressions.log" 2>&1; then
    result="FAILED on a regression input"
  elif ! "$t" "${args[@]}" -max_total_time="$secs" "$dir/corpus" "$src/corpus/$name" \
    >"$dir/log" 2>&1; then
    result=FAILED
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" 2>/dev/null | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/log" 2>/dev/null | tail -1)
  cov=$(grep -oE 'cov: [0-9]+' "$dir/log" 2>/dev/null | tail -1 | cut -d' ' -f2)
  ft=$(grep -oE 'ft: [0-9]+' "$dir/log" 2>/dev/null | tail -1 | cut -d' ' -f2)
  printf '%-16s %10s %8s %7s %7s %s\n' "$name" "${execs:--}" "${rate:--}" "${cov:--}" \
    "${ft:--}" "$result"
  if [[ $result != ok ]]; then
    status=1
    mkdir -p "$keep/$name"
    cp -r "$dir/artifacts/." "$dir"/*.log "$dir/log" "$keep/$name/" 2>/dev/null || true
    echo "---- $name: the end of its log (inputs and logs kept in $keep/$name)"
    tail -n 40 "$dir/log" "$dir/regressions.log" 2>/dev/null || true
  fi
done
exit $status
