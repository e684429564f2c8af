# lib.sh — the preamble the benchmark scripts share. Source it first, with the script's name and
# its arguments:
#   source "$(dirname "$0")/lib.sh" NAME "$@"
# Arguments: [--quick] [BUILD_DIR]. Sets QUICK (1 with --quick), SRC (the source tree), BUILD
# (BUILD_DIR, default SRC/build), SIZE and SIZE_BYTES (the benchmark image: 2 GiB; --quick:
# 512 MiB), GIB (SIZE in GiB) and WORK (a new directory under VB_BENCH_DIR, default BUILD, removed at
# exit). Errors exit 1 with a line saying what is missing.
set -euo pipefail

BENCH_NAME=$1
shift
QUICK=0
if [[ ${1:-} == --quick ]]; then QUICK=1; shift; fi
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=$(cd "${1:-$SRC/build}" && pwd)
if ((QUICK)); then SIZE=512M SIZE_BYTES=$((512 << 20)); else SIZE=2G SIZE_BYTES=$((2 << 30)); fi
GIB=$(awk -v b=$SIZE_BYTES 'BEGIN { printf "%.4f", b / 1073741824 }')

# bench_need_bins FILE...: each is built
bench_need_bins() {
    local b
    for b; do
        [[ -x $b ]] || { echo "$BENCH_NAME.sh: $b not built (cmake --build $BUILD)" >&2; exit 1; }
    done
}

# bench_need_tools COMMAND...: each is installed
bench_need_tools() {
    local t
    for t; do
        command -v "$t" >/dev/null ||
            { echo "$BENCH_NAME.sh: $t is not installed (deploy/install-deps.sh)" >&2; exit 1; }
    done
}

BENCH_PARENT=${VB_BENCH_DIR:-$BUILD}
mkdir -p "$BENCH_PARENT"
WORK=$(mktemp -d "$BENCH_PARENT/bench-$BENCH_NAME.XXXXXX")
trap 'rm -rf "$WORK"' EXIT # a script with more to clean up sets its own

# bench_time OUTFILE CMD...: runs CMD under /usr/bin/time -v (after a sync, so that nobody pays
# for another's dirty pages), its output in OUTFILE; sets WALL (s), CPU (user + sys, s) and RSS
# (peak, MiB). A failing CMD ends the script with its error output.
bench_time() {
    local out=$1
    shift
    sync
    if ! /usr/bin/time -v -o "$WORK/time.txt" "$@" >"$out" 2>"$WORK/stderr.txt"; then
        echo "$BENCH_NAME.sh: failed: $*" >&2
        cat "$WORK/stderr.txt" >&2
        exit 1
    fi
    WALL=$(awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0;
                 for (i = 1; i <= n; i++) s = s * 60 + p[i]; printf "%.3f", s }' "$WORK/time.txt")
    CPU=$(awk -F': ' '/User time/ { u = $2 } /System time/ { s = $2 }
                END { printf "%.2f", u + s }' "$WORK/time.txt")
    RSS=$(awk -F': ' '/Maximum resident set size/ { printf "%.1f", $2 / 1024 }' "$WORK/time.txt")
}

# time stamps and the seconds between two of them
now_s() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
