#!/usr/bin/env bash
# Nothing slow on the coordinator's event loop: a prune whose garbage collection goes over
# thousands of objects in a slow store runs on a worker thread while agents heartbeat every
# 200 ms. No agent is lost and none sees the coordinator go silent; `vbak status` and `vbak jobs`
# answer meanwhile and show the prune job "collecting garbage"; a second prune is refused until
# it ends; the garbage is gone and the live backup restores byte-identical afterwards.
#
# The slow store: VBAK_TEST_STORE_DELAY_US makes the POSIX store sleep that many microseconds
# per entry it lists and per object it removes (a test-only hook standing in for a slow object
# store); every process of the site gets it, only the coordinator's collection lists and removes
# much.
source "$(dirname "$0")/lib.sh"

GARBAGE=3000
# restart_coordinator VAR=VALUE...: the coordinator again with that environment, once both agents
# have registered with it (the agents it loads from the catalog look online until then). An agent
# whose hello is unanswered waits for the handshake deadline (hello_timeout_ms), not its
# heartbeat liveness, so each registers once: the counts the callers take next hold.
restart_coordinator() {
  local pid
  pid=$(cat "$SITE/run/coordinator.pid")
  kill "$pid"
  # a coordinator that stops waits for its workers' work in flight (the catalog copy after the
  # last job, say), each store call of which takes as long as the delay the run was given
  wait_until 60 "the coordinator stopped" bash -c "! kill -0 $pid 2>/dev/null"
  env "$@" "$VBAK" lab up "$SITE" >/dev/null
  wait_until 20 "both agents registered with the new coordinator" \
    bash -c "[[ \$(\"$VBAK\" status --json | jq .counters.registered) -ge 2 ]]"
  wait_until 10 "two agents online" has_count online 2
}
export VBAK_TEST_STORE_DELAY_US=1000 # ~3000 × (list + remove): about 7 s of collection

# Format 1: the garbage is thousands of chunk files, one store object each (format 2 would need
# thousands of packs to give the collection as many objects to list and remove).
"$VBAK" lab create "$SITE" --proxies 2 --vms 1 --disk-size 8M --format 1 --heartbeat-ms 200 --liveness 3 >/dev/null
"$VBAK" lab up "$SITE" >/dev/null
wait_until 15 "two agents online" has_count online 2
vm=$(site_json | jq -r '.vms[0].name')
save_content one
job=$(backup_json "$vm")
[[ $(jq -r .state <<<"$job") == succeeded ]] || fail "backup: $job"
rp=$(rp_of "$job" "$vm")

# garbage: chunk objects no index references, older than any job
chunk_files() { find "$SITE/repo/chunks" -type f | wc -l; }
live_chunks=$(chunk_files)
python3 - "$SITE/repo/chunks" "$GARBAGE" <<'EOF'
import os, sys, time
root, n = sys.argv[1], int(sys.argv[2])
old = time.time() - 2 * 86400
for i in range(n):
    hexd = os.urandom(32).hex()
    d = os.path.join(root, hexd[:2])
    os.makedirs(d, mode=0o700, exist_ok=True)
    p = os.path.join(d, hexd)
    with open(p, "wb") as f:
        f.write(b"garbage")
    os.utime(p, (old, old))
EOF
registered=$(counter registered)

"$VBAK" prune --keep-last 1 --json >"$TEST_DIR/prune.json" 2>"$TEST_DIR/prune.err" &
prune_pid=$!
# While it collects: status answers within a generous liveness bound (the CLI gives up after
# 3 s) and names the work in the background; the jobs list shows the prune job's phase.
collecting() {
  "$VBAK" --timeout_ms=3000 jobs --json |
    jq -e '[.[] | select(.kind == "prune" and .state == "running" and .phase == "collecting garbage")] | length == 1'
}
wait_until 20 "a running prune job collecting garbage in vbak jobs" collecting
prune_job=$("$VBAK" jobs --json | jq '[.[] | select(.kind == "prune")][0].id')
answers=0
while kill -0 "$prune_pid" 2>/dev/null && ((answers < 5)); do
  st=$("$VBAK" --timeout_ms=3000 status --json) || fail "vbak status did not answer during the collection"
  if kill -0 "$prune_pid" 2>/dev/null; then
    jq -e --argjson j "$prune_job" '.background | any(.job == $j and .kind == "prune" and .phase == "collecting garbage")' \
      <<<"$st" >/dev/null || fail "status during the collection does not show it: $(jq -c .background <<<"$st")"
  fi
  answers=$((answers + 1))
  sleep 0.5
done
((answers >= 3)) || fail "the collection ended before status could be asked three times: make it slower"
"$VBAK" job show "$prune_job" --json | jq -e '.state != "running" or .progress.phase == "collecting garbage"' >/dev/null \
  || fail "job show: $("$VBAK" job show "$prune_job" --json | jq -c .progress)"
rc=0; "$VBAK" prune --keep-last 1 2>"$TEST_DIR/err2" || rc=$?
if kill -0 "$prune_pid" 2>/dev/null; then
  [[ $rc == 1 ]] && grep -q "job $prune_job is still collecting garbage" "$TEST_DIR/err2" \
    || fail "a second prune during the first: rc $rc, $(cat "$TEST_DIR/err2")"
fi
pass "vbak status and vbak jobs answer during a $GARBAGE-object collection and show it; a second prune waits its turn"

wait "$prune_pid" || fail "prune failed: $(cat "$TEST_DIR/prune.err")"
pruned=$(cat "$TEST_DIR/prune.json")
[[ $(jq .gc.swept <<<"$pruned") == "$GARBAGE" && $(jq .job <<<"$pruned") == "$prune_job" ]] \
  || fail "prune did not collect the $GARBAGE garbage objects: $pruned"
[[ $(chunk_files) == "$live_chunks" ]] || fail "$(chunk_files) chunk files after the collection, $live_chunks before the garbage"
[[ $("$VBAK" job show "$prune_job" --json | jq -r '.state + " " + (.result.gc.swept | tostring)') == "succeeded $GARBAGE" ]] \
  || fail "job show after the prune: $("$VBAK" job show "$prune_job" --json | jq -c '{state, error, result}')"
pass "the collection removed $GARBAGE objects; job $prune_job keeps its result"

# the agents never noticed: none lost, none reconnected, none found the coordinator silent
has_count online 2 || fail "agents after the collection: $(agents_json | jq -c '[.[] | {name, state}]')"
[[ $(counter registered) == "$registered" ]] || fail "agents registered again during the collection"
! grep -h "agent_lost" "$SITE/log/coordinator.log" || fail "the coordinator lost an agent"
! grep -h "coordinator_silent" "$SITE"/log/agent-*.log || fail "an agent found the coordinator silent"
check_restore "$rp" one
pass "heartbeats at 200 ms stayed on time (no agent lost or reconnected); restore point $rp restores byte-identical"

# A backup's indexes and manifest are written on a worker too: with every put to the store taking
# two seconds in the coordinator, heartbeats stay on time and job show names the phase meanwhile
# (each phase lasts at least one put: long enough for a CLI call on a loaded machine to see it).
restart_coordinator VBAK_TEST_STORE_DELAY_US=2000000
silent_before=$(cat "$SITE"/log/agent-*.log | grep -c coordinator_silent || true)
registered=$(counter registered)
save_content two
job=$("$VBAK" backup "$vm" --full --json | jq .job)
phase() { "$VBAK" --timeout_ms=3000 job show "$job" --json | jq -r '.state + " " + .progress.phase'; }
in_phase() { [[ $(phase) == "running $1" ]]; }
wait_until 30 "job $job writing its indexes" in_phase index
"$VBAK" --timeout_ms=3000 status --json >/dev/null || fail "vbak status did not answer while indexes were written"
wait_until 30 "job $job writing its manifest (phase commit)" in_phase commit
wait_until 30 "job $job ends" bash -c "[[ \$(\"$VBAK\" job show $job --json | jq -r .state) != running ]]"
[[ $(phase) == "succeeded succeeded" ]] || fail "backup with a slow store: $("$VBAK" job show "$job" --json | jq -c '{state, error}')"
[[ $(cat "$SITE"/log/agent-*.log | grep -c coordinator_silent || true) == "$silent_before" ]] ||
  fail "an agent found the coordinator silent while it wrote indexes"
[[ $(counter registered) == "$registered" ]] || fail "agents registered again while indexes were written"
check_restore "$(rp_of "$("$VBAK" job show "$job" --json)" "$vm")" two
pass "indexes and manifest written on a worker (1 s per put): phases index then commit shown, no agent found the coordinator silent, restore byte-identical"

# The inventory a backup, restore or explain begins with is read on a worker as well, and orphans
# runs whole on one: with each inventory read and orphans listing taking 1.5 s
# (VBAK_TEST_INVENTORY_DELAY_MS, a test-only hook of the lab provider standing in for a slow
# vCenter), they still work and no agent finds the coordinator silent.
restart_coordinator VBAK_TEST_STORE_DELAY_US=0 VBAK_TEST_INVENTORY_DELAY_MS=1500
silent_before=$(cat "$SITE"/log/agent-*.log | grep -c coordinator_silent || true)
registered=$(counter registered)
"$VBAK" --timeout_ms=10000 explain "$vm" >/dev/null || fail "explain with a slow inventory"
"$VBAK" --timeout_ms=10000 orphans --json | jq -e '.count == 0' >/dev/null || fail "orphans with a slow provider"
job=$("$VBAK" --timeout_ms=10000 backup "$vm" --wait --json) || fail "backup with a slow inventory: $job"
[[ $(jq -r .state <<<"$job") == succeeded ]] || fail "backup with a slow inventory: $(jq -c '{state, error}' <<<"$job")"
check_restore "$(rp_of "$job" "$vm")" two
[[ $(cat "$SITE"/log/agent-*.log | grep -c coordinator_silent || true) == "$silent_before" ]] ||
  fail "an agent found the coordinator silent while the inventory was read"
[[ $(counter registered) == "$registered" ]] || fail "agents registered again while the inventory was read"
pass "explain, orphans, backup and restore with a 1.5 s provider: no agent found the coordinator silent; restore byte-identical"

# The repository is opened, and a restore's source indexes are read, on the command's worker too:
# a coordinator whose every read from the store takes a second (VBAK_TEST_STORE_READ_DELAY_US,
# as an s3:// repository whose RGW is down answers only after the store's retries) opens the
# repository at its first job. Meanwhile status answers and no agent finds the coordinator silent
# (before, the open and the index reads ran on the loop: seconds with no heartbeat). The CLI waits
# longer for the restore's answer, which comes after its indexes were read (3 reads a disk).
restart_coordinator VBAK_TEST_STORE_READ_DELAY_US=1000000
printf 'timeout_ms = "30000"\n' >>"$VBAK_CONFIG"
silent_before=$(cat "$SITE"/log/agent-*.log | grep -c coordinator_silent || true)
registered=$(counter registered)
save_content three
"$VBAK" --timeout_ms=30000 backup "$vm" --json >"$TEST_DIR/slow-open.json" 2>"$TEST_DIR/slow-open.err" &
backup_pid=$!
answers=0
while kill -0 "$backup_pid" 2>/dev/null; do
  "$VBAK" --timeout_ms=3000 status --json >/dev/null || fail "vbak status did not answer while the repository was opened"
  answers=$((answers + 1))
done
wait "$backup_pid" || fail "backup with a slow repository open: $(cat "$TEST_DIR/slow-open.err")"
((answers >= 1)) || fail "the backup was answered before status could be asked"
job=$(jq .job "$TEST_DIR/slow-open.json")
wait_until 60 "job $job ends" bash -c "[[ \$(\"$VBAK\" job show $job --json | jq -r .state) != running ]]"
[[ $("$VBAK" job show "$job" --json | jq -r .state) == succeeded ]] ||
  fail "backup after a slow repository open: $("$VBAK" job show "$job" --json | jq -c '{state, error}')"
check_restore "$(rp_of "$("$VBAK" job show "$job" --json)" "$vm")" three
[[ $(cat "$SITE"/log/agent-*.log | grep -c coordinator_silent || true) == "$silent_before" ]] ||
  fail "an agent found the coordinator silent while it opened the repository or read a restore's indexes"
[[ $(counter registered) == "$registered" ]] || fail "agents registered again while the repository was opened"
grep -q "repository_open repository=" "$SITE/log/coordinator.log" || fail "the coordinator did not log its repository open"
pass "repository opened and restore indexes read on a worker (1 s per read): status answered $answers times, no agent found the coordinator silent, restore byte-identical"
