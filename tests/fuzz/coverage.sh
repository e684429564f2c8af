#!/usr/bin/env bash
# coverage.sh BUILD_DIR [CORPUS_ROOT...]: the source coverage each fuzz target reaches on its
# corpus, by LLVM's source-based coverage. BUILD_DIR is configured (or made) with
#   cmake -S . -B BUILD_DIR -DCMAKE_C_COMPILER=clang -DVB_FUZZ=ON -DVB_FUZZ_COVERAGE=ON -DVB_TESTS=OFF
# Each target replays every input of tests/fuzz/corpus/TARGET and of CORPUS_ROOT/TARGET/corpus
# (the directory a long run grew) once (-runs=0), and llvm-cov reports the lines, functions and
# branches covered in the files that are that target's parser (the table below), not in the
# whole library it links. Prints one line per target.
set -euo pipefail
(($# >= 1)) || { echo "usage: coverage.sh BUILD_DIR [CORPUS_ROOT...]" >&2; exit 2; }
build=$(cd "$1" && pwd)
shift
src=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$src/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
profdata=$(command -v llvm-profdata || command -v llvm-profdata-14)
cov=$(command -v llvm-cov || command -v llvm-cov-14)

# target -> the parser's source files (extended regular expression on the path under the tree)
declare -A files=(
  [fuzz_wire]='common/wire(_check)?\.c|coordinator/admin_args\.c'
  [fuzz_soap]='common/vsphere/(soap|xml|vs_inventory|vs_tasks|vs_fcd)\.c'
  [fuzz_config]='common/config\.c'
  [fuzz_disk_uri]='common/disk/disk_uri\.c'
  [fuzz_lab_site]='common/lab/(site|lab_provider)\.c'
  [fuzz_repo]='common/repo/(pack|packed|idxobj|chunkidx|index|manifest|repo)\.c'
  [fuzz_s3_xml]='common/repo/s3xml\.c'
)

printf '%-16s %8s %8s %10s %10s  %s\n' target inputs lines functions branches files
for t in "$build"/fuzz/fuzz_*; do
  name=$(basename "$t")
  dirs=("$src/corpus/$name")
  for root in "$@"; do [[ -d $root/$name/corpus ]] && dirs+=("$root/$name/corpus"); done
  inputs=$(find "${dirs[@]}" -type f | wc -l)
  LLVM_PROFILE_FILE="$work/$name-%p.profraw" ASAN_OPTIONS=detect_leaks=0 \
    "$t" -runs=0 -timeout=30 "${dirs[@]}" >"$work/$name.log" 2>&1 || true
  "$profdata" merge -sparse "$work/$name"-*.profraw -o "$work/$name.profdata"
  regex=${files[$name]:-'^$'}
  mapfile -t srcs < <(cd "$top" && find common coordinator -name '*.c' | grep -E "^($regex)$" | sed "s#^#$top/#")
  ((${#srcs[@]})) || { printf '%-16s %8s %s\n' "$name" "$inputs" "(no parser files listed)"; continue; }
  total=$("$cov" report "$t" -instr-profile="$work/$name.profdata" "${srcs[@]}" | grep '^TOTAL')
  # TOTAL regions missed cover functions missed cover lines missed cover branches missed cover
  read -r _ _ _ _ _ _ fcov _ _ lcov _ _ bcov <<<"$total"
  printf '%-16s %8s %8s %10s %10s  %s\n' "$name" "$inputs" "$lcov" "$fcov" "$bcov" \
    "$(printf '%s ' "${srcs[@]#"$top"/}")"
done
