#!/usr/bin/env bash
# run.sh BUILD_DIR [SECONDS]: runs every fuzz target of BUILD_DIR (configured with -DVB_FUZZ=ON)
# for SECONDS each (default 20) from its seed corpus (tests/fuzz/corpus/TARGET, with
# TARGET.dict when there is one), after replaying its regression inputs
# (tests/fuzz/regressions/TARGET). Prints one line per target: executions, executions per
# second, coverage (edges) and features, and the result. Fails on any crash, leak, timeout or
# sanitizer report, keeping the input that caused it and the log in $VB_FUZZ_KEEP (default
# BUILD_DIR/fuzz-findings). New corpus entries go to a scratch directory, never the source tree.
# Targets run side by side, as many at once as there are CPUs (VB_FUZZ_JOBS).
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
# fuzz_one TARGET: replays, then fuzzes one target; leaves its table row in $work/NAME/row and
# its result in $work/NAME/result
fuzz_one() {
  local t=$1 name dir result args execs rate cov ft
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
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" 2>/dev/null | tail -1) || true
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/log" 2>/dev/null | tail -1) || true
  cov=$(grep -oE 'cov: [0-9]+' "$dir/log" 2>/dev/null | tail -1 | cut -d' ' -f2) || true
  ft=$(grep -oE 'ft: [0-9]+' "$dir/log" 2>/dev/null | tail -1 | cut -d' ' -f2) || true
  printf '%-16s %10s %8s %7s %7s %s\n' "$name" "${execs:--}" "${rate:--}" "${cov:--}" \
    "${ft:--}" "$result" >"$dir/row"
  echo "$result" >"$dir/result"
}

# Targets run side by side, one per CPU (VB_FUZZ_JOBS): each is single-threaded, so each still
# gets SECONDS of a CPU, and the whole run takes SECONDS x targets / CPUs.
par=${VB_FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}
for t in "${targets[@]}"; do
  while (($(jobs -rp | wc -l) >= par)); do wait -n || true; done
  fuzz_one "$t" &
done
wait

status=0
printf '%-16s %10s %8s %7s %7s %s\n' target executions exec/s cov ft result
for t in "${targets[@]}"; do
  name=$(basename "$t")
  dir=$work/$name
  cat "$dir/row" 2>/dev/null || printf '%-16s did not finish\n' "$name"
  result=$(cat "$dir/result" 2>/dev/null || echo FAILED)
  if [[ $result != ok ]]; then
    status=1
    mkdir -p "$keep/$name"
    cp -r "$dir/artifacts/." "$dir"/*.log "$dir/log" "$keep/$name/" 2>/dev/null || true
    echo "---- $name: the end of its log (inputs and logs kept in $keep/$name)"
    tail -n 40 "$dir/log" "$dir/regressions.log" 2>/dev/null || true
  fi
done
exit $status
