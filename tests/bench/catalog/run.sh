#!/bin/bash
# Runs the catalog benchmark in a fresh temp directory and shows the query plans it relies on.
#   tests/bench/catalog/run.sh [BUILD_DIR] [bench options...]   (BUILD_DIR defaults to ./build)
set -euo pipefail
build=${1:-build}
shift || true
bin="$build/tests/vbak-bench-catalog"
[ -x "$bin" ] || { echo "run.sh: $bin not built (cmake --build $build)" >&2; exit 1; }
dir=$(mktemp -d /tmp/vbak-bench-catalog-XXXXXX)
trap 'rm -rf "$dir"' EXIT
"$bin" "$dir" "$@" 2>/dev/null
echo "query plans:"
sqlite3 "$dir/catalog.db" \
  "EXPLAIN QUERY PLAN SELECT id FROM restore_points rp WHERE rp.vm = 'vm-0001' AND rp.state = 'complete' AND rp.created >= 0 AND rp.created <= 9e18 ORDER BY rp.created DESC, rp.id DESC LIMIT 1;" \
  | sed 's/^/  rp by vm: /'
sqlite3 "$dir/catalog.db" \
  "EXPLAIN QUERY PLAN UPDATE tasks SET state = 'done' WHERE id = 1 AND state IN ('queued', 'running');" \
  | sed 's/^/  task complete: /'
echo "catalog size: $(du -h "$dir/catalog.db" | cut -f1)"
