# Shared helpers for the integration tests: a lab site in a temp dir, polling, assertions.
# Tests source this file; ctest sets VB_BIN (build/bin), VB_TESTS_BIN (build/tests), VB_SRC.
set -euo pipefail

VB_BIN=${VB_BIN:?VB_BIN must point at build/bin}
VB_TESTS_BIN=${VB_TESTS_BIN:-$VB_BIN/../tests}
VBAK="$VB_BIN/vbak"

TEST_DIR=$(mktemp -d "${TMPDIR:-/tmp}/vbak-test.XXXXXX")
SITE="$TEST_DIR/site"
export VBAK_CONFIG="$SITE/vbak.conf"

# Processes a test starts by hand (not through a lab site): stopped on exit.
VB_PIDS=()
# Commands run on exit after the site is down (e.g. stopping a test's own RGW).
VB_ON_EXIT=()

cleanup() {
  local rc=$?
  local p
  for p in "${VB_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  if [[ -d $SITE ]]; then
    "$VBAK" lab down "$SITE" >/dev/null 2>&1 || true
  fi
  if ((rc != 0)) && [[ -d $SITE/log ]]; then
    echo "---- logs (test failed) ----" >&2
    tail -n 40 "$SITE"/log/*.log >&2 || true
  fi
  for p in "${VB_ON_EXIT[@]}"; do eval "$p" >/dev/null 2>&1 || true; done
  rm -rf "$TEST_DIR"
  exit $rc
}
trap cleanup EXIT
# a test stopped by a signal (a ctest timeout, ^C) cleans up too: mounts, namespaces, servers
trap 'exit 143' TERM
trap 'exit 130' INT

# free_port: a TCP port on 127.0.0.1 that nothing listens on now.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok - $*"; }

# wait_until TIMEOUT_S DESCRIPTION COMMAND...: polls COMMAND every 0.1 s.
wait_until() {
  local timeout=$1 what=$2; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail "timed out after ${timeout}s waiting for: $what"
    sleep 0.1
  done
}

agents_json() { "$VBAK" agents --json; }
agent_state() { agents_json | jq -r --arg n "$1" '.[] | select(.name == $n) | .state'; }
count_state() { agents_json | jq --arg s "$1" '[.[] | select(.state == $s)] | length'; }
has_count() { [[ $(count_state "$1") == "$2" ]]; }
state_is() { [[ $(agent_state "$1") == "$2" ]]; }
counter() { "$VBAK" status --json | jq -r ".counters.$1"; }
conf_value() { sed -n "s/^$2 = \"\\(.*\\)\"$/\\1/p" "$1"; }

# Site helpers for the job tests.
site_json() { "$VBAK" lab show "$SITE" --json; }

# save_content TAG: copies every disk's current content (what a backup now would capture) to
# $TEST_DIR/expect/TAG/<vm>-<key>.raw, holes kept (`lab cat`: a disk with snapshots is a chain of
# files, its live file a delta).
save_content() {
  local dir="$TEST_DIR/expect/$1"
  mkdir -p "$dir"
  site_json | jq -r '(.vms[] | .name as $vm | .disks[] | [$vm, .key]),
                    (.fcds[] | [.name, .key]) | @tsv' |
    while IFS=$'\t' read -r vm key; do
      "$VBAK" lab cat "$SITE" "$vm" "$key" "$dir/$vm-$key.raw"
    done
}

# flip_byte FILE OFFSET: inverts the byte at OFFSET (a fixed byte written there would leave it as
# it was once in 256 runs, and the damage a test expects would not be there)
flip_byte() {
  local b
  b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
  [[ -n $b ]] || fail "flip_byte: $1 has no byte at $2"
  printf "\\$(printf '%03o' $((b ^ 255)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# backup_json ARGS...: runs a backup with --wait --json and prints the finished job
backup_json() { "$VBAK" backup "$@" --wait --json; }

# full_incremental_round: every VM of the site backed up full (disks saved as expect/full), 5 % of
# each changed, backed up again (expect/incr); each VM's second backup must be an incremental and
# both restore points must restore byte-identical and the incremental verify clean. Sets vms,
# job1 and job2 (the finished jobs' JSON).
full_incremental_round() {
  vms=$(site_json | jq -r '.vms[].name')
  save_content full
  job1=$(backup_json --all)
  [[ $(jq -r .state <<<"$job1") == succeeded ]] || fail "full backup: $job1"
  local vm
  for vm in $vms; do "$VBAK" lab mutate "$SITE" "$vm" --percent 5 >/dev/null; done
  save_content incr
  job2=$(backup_json --all)
  [[ $(jq -r .state <<<"$job2") == succeeded ]] || fail "incremental backup: $job2"
  for vm in $vms; do
    [[ $(jq -r --arg vm "$vm" '.vm_details[] | select(.vm == $vm) | .mode' <<<"$job2") == incremental ]] \
      || fail "$vm: second backup not incremental"
    check_restore "$(rp_of "$job1" "$vm")" full
    check_restore "$(rp_of "$job2" "$vm")" incr
    "$VBAK" verify "$(rp_of "$job2" "$vm")" >/dev/null || fail "verify of $vm's incremental"
  done
}

# rp_of JOB_JSON VM: the restore point the job made for VM
rp_of() { jq -r --arg vm "$2" '.vm_details[] | select(.vm == $vm) | .restore_point' <<<"$1"; }

# check_restore RP TAG: restores RP to a directory and compares every disk with the saved content
check_restore() {
  local rp=$1 tag=$2 out="$TEST_DIR/restore-$1"
  local job
  job=$("$VBAK" restore "$rp" --to-dir "$out" --wait --json) || fail "restore of $rp: $job"
  [[ $(jq -r .state <<<"$job") == succeeded ]] || fail "restore of $rp did not succeed: $job"
  local vm
  vm=$("$VBAK" restore-point show "$rp" --json | jq -r .vm)
  [[ $(cd "$out" && ls -- *.raw 2>/dev/null) == "$(cd "$TEST_DIR/expect/$tag" && ls -- "$vm"-*.raw)" ]] \
    || fail "restore point $rp restored other disks than $vm has: $(ls "$out")"
  for f in "$out"/*.raw; do
    cmp -s "$f" "$TEST_DIR/expect/$tag/$(basename "$f")" || fail "restore point $rp: $(basename "$f") differs from the content at its backup"
  done
  rm -rf "$out"
}

# serve_bg RP ARGS...: a background `vbak serve` with its JSON output in $TEST_DIR/serve.json
serve_bg() {
  local rp=$1; shift
  "$VBAK" serve "$rp" --background --pid-file "$TEST_DIR/serve.pid" --json "$@" >"$TEST_DIR/serve.json" \
    2>"$TEST_DIR/serve.err" ||
    fail "vbak serve $rp $*: $(cat "$TEST_DIR/serve.err" "$TEST_DIR/serve.pid.log" 2>/dev/null)"
  VB_PIDS+=("$(cat "$TEST_DIR/serve.pid")") # stopped by the test's cleanup if it fails
}
# serve_stop: stops the serve serve_bg started
serve_stop() {
  local pid; pid=$(cat "$TEST_DIR/serve.pid")
  kill -TERM "$pid"
  wait_until 10 "the serve $pid stops" bash -c "! kill -0 $pid"
}
# uri_of DISK: the NBD URI the serve exports disk DISK at
uri_of() { jq -r --arg k "$1" '.exports[] | select(.disk == $k) | .uri' "$TEST_DIR/serve.json"; }
