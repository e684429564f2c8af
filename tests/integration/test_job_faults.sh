#!/usr/bin/env bash
# Faults during jobs: an agent SIGKILLed mid-backup (the job completes on the others), the
# coordinator SIGKILLed mid-backup (no snapshot left, no partial restore point), forged and
# replayed task results (dropped, the job is not corrupted); with an encrypted repository.
source "$(dirname "$0")/lib.sh"
FUZZ="timeout 60 $VB_TESTS_BIN/vbak-fuzzpeer"

# On a loaded machine each CLI call can take a second: an agent stopped while the test looks
# must not be declared lost meanwhile (liveness 8 x 500 ms), and every task must last long
# enough to be seen running (each repository write of the daemons takes 1 s more, in this
# first part only: a task writes a pack or two). Disks of 64 MiB: 4 tasks of 16 MiB each
# (task_bytes set below the default), 8 for the VM's two disks, more than the 4 agents, so that
# one dies with a task while others remain and the fallback below finds a task on an agent that
# would use NBDSSL; every restore and comparison below reads the whole disk, so a larger one only
# makes the test slower.
"$VBAK" lab create "$SITE" --vms 1 --disk-size 64M --encrypt --heartbeat-ms 500 --liveness 8 >/dev/null
echo 'task_bytes = "16777216"' >>"$SITE/coordinator.conf"
# each lab proxy stands for a machine of its own here, so that every agent gets tasks (on this
# one machine they would share its task budget, and the SAN agent would take them all)
for f in "$SITE"/agent-*.conf; do printf 'machine = "%s"\n' "$(basename "$f" .conf)" >>"$f"; done
export VBAK_TEST_STORE_DELAY_US=1000000
"$VBAK" lab up "$SITE" >/dev/null
wait_until 10 "four agents online" has_count online 4
vm=$(site_json | jq -r '.vms[0].name')
[[ $("$VBAK" repo stats "$SITE/repo" --json | jq -r .encryption) != none ]] || fail "repository is not encrypted"

# job_running JOB: some task of the job runs on an agent
tasks_on() { "$VBAK" job show "$1" --json | jq -r '[.tasks[] | select(.state == "running") | .agent] | .[0] // empty'; }
job_state() { "$VBAK" job show "$1" --json | jq -r .state; }
# wait_running_task JOB: the agent of a running task of JOB; fails once JOB is no longer running
wait_running_task() {
  local a="" i
  for i in $(seq 600); do
    a=$(tasks_on "$1")
    [[ -n $a ]] && { echo "$a"; return; }
    ((i % 10)) || [[ $(job_state "$1") == running ]] || return 1
    sleep 0.05
  done
  return 1
}
wait_job_end() { wait_until 120 "job $1 ends" bash -c "[[ \$(\"$VBAK\" job show $1 --json | jq -r .state) != running ]]"; }

# 1. an agent dies in the middle of a full backup: its tasks finish elsewhere
save_content one
job=$("$VBAK" backup "$vm" --json | jq .job)
# The victim is stopped first and killed only while the coordinator still sees it running a
# task: on a loaded machine a small task could otherwise finish between the look and the kill.
running_on() { "$VBAK" job show "$1" --json | jq -e --arg a "$2" 'any(.tasks[]; .state == "running" and .agent == $a)' >/dev/null; }
for _ in $(seq 50); do
  victim=$(wait_running_task "$job") || fail "no task of job $job was seen running (job $(job_state "$job"))"
  kill -STOP "$(cat "$SITE/run/$victim.pid")"
  sleep 0.2 # a result already sent is handled
  running_on "$job" "$victim" && break
  kill -CONT "$(cat "$SITE/run/$victim.pid")"
done
running_on "$job" "$victim" || fail "never caught an agent with a running task"
kill -9 "$(cat "$SITE/run/$victim.pid")"
wait_job_end "$job"
[[ $(job_state "$job") == succeeded ]] || fail "the job did not survive losing $victim: $("$VBAK" job show "$job")"
"$VBAK" job show "$job" --json | jq -e 'all(.tasks[]; .state == "done")' >/dev/null \
  || fail "a task did not finish: $("$VBAK" job show "$job" --json | jq -c '[.tasks[] | {agent, state}]')"
grep -Eq "agent_lost agent=$victim requeued=[1-9]" "$SITE/log/coordinator.log" \
  || fail "the tasks $victim was running were not requeued"
rp1=$("$VBAK" job show "$job" --json | jq -r '.vm_details[0].restore_point')
check_restore "$rp1" one
pass "SIGKILL of $victim mid-job: the job completed on the others; restore byte-identical (encrypted repository)"
# the rest runs at full speed: the site restarted without the slow repository writes
"$VBAK" lab down "$SITE" >/dev/null
unset VBAK_TEST_STORE_DELAY_US
"$VBAK" lab up "$SITE" >/dev/null
wait_until 10 "four agents online again" has_count online 4

# 2. the coordinator dies in the middle of a backup — snapshot made, VM held, tasks queued
#    (the agents are stopped first so the job is surely in flight): restarted, it fails cleanly
before=$("$VBAK" restore-points --json | jq length)
for n in 1 2 3 4; do kill "$(cat "$SITE/run/agent-$n.pid")"; done
wait_until 10 "agents gone" has_count online 0
job=$("$VBAK" backup "$vm" --full --json | jq .job)
wait_until 30 "the snapshot and pending restore point of job $job" bash -c \
  "\"$VBAK\" job show $job --json | jq -e '.vm_details[0] | .snapshot_state == \"created\" and .restore_point != null' >/dev/null"
crashed_job=$job
crashed_rp=$("$VBAK" job show "$job" --json | jq '.vm_details[0].restore_point')
kill -9 "$(cat "$SITE/run/coordinator.pid")"
"$VBAK" lab up "$SITE" >/dev/null
wait_until 20 "agents back" has_count online 4
[[ $(job_state "$job") == failed ]] || fail "job $job after a coordinator crash: $(job_state "$job")"
"$VBAK" job show "$job" --json | jq -r .error | grep -q "coordinator stopped" || fail "no reason for the failure"
[[ $(site_json | jq '[.vms[] | .snapshots[] | select(.name | startswith("vbak-"))] | length') == 0 ]] \
  || fail "a snapshot stayed on the VM after the coordinator crash"
[[ $(site_json | jq -r '.vms[0].access_blocked_by // "none"') == none ]] || fail "the VM is still blocked for Storage vMotion"
[[ $("$VBAK" restore-points --json | jq length) == "$before" ]] || fail "a restore point of the failed job is visible"
pass "SIGKILL of the coordinator mid-job: job failed cleanly, no snapshot, no partial restore point"

# 3. forged and replayed task results while a backup runs: dropped, the job is not corrupted
"$VBAK" lab mutate "$SITE" "$vm" --percent 5 >/dev/null
save_content two
agent_ep=$(conf_value "$SITE/coordinator.conf" agent_endpoint)
server_key=$(conf_value "$SITE/agent-1.conf" coordinator_public_key)
job=$("$VBAK" backup "$vm" --json | jq .job)
$FUZZ results "$agent_ep" "$server_key" --token "$SITE/keys/enrollment.token" --tasks 300 >/dev/null
wait_job_end "$job"
[[ $(job_state "$job") == succeeded ]] || fail "the job failed under forged results"
[[ $("$VBAK" status --json | jq .counters.results_dropped) -ge 600 ]] || fail "forged results not counted as dropped"
rp2=$("$VBAK" job show "$job" --json | jq -r '.vm_details[0].restore_point')
check_restore "$rp2" two
check_restore "$rp1" one
pass "forged and replayed results dropped; restores still byte-identical"
# the crashed job's pending restore point was discarded: its id (and the index names made from
# it) is never handed out again, nor is the job's
((rp2 > crashed_rp && job > crashed_job)) ||
  fail "ids reused after the coordinator crash: restore point $rp2 (crashed job's: $crashed_rp), job $job (crashed: $crashed_job)"
pass "ids are not reused after a coordinator SIGKILL (restore point $rp2 > $crashed_rp)"

# 4. Storage vMotion during a backup: blocked while the job holds the VM (PrepareForAccess);
#    forced anyway, it is detected and the VM's backup is discarded with the reason. The agents
#    are stopped first so that the job holds the VM, snapshot made, until they come back.
before=$("$VBAK" restore-points --json | jq length)
indexes_before=$(ls "$SITE/repo/indexes")
for n in 1 2 3 4; do kill "$(cat "$SITE/run/agent-$n.pid")"; done
wait_until 10 "agents gone" has_count online 0
job=$("$VBAK" backup "$vm" --full --json | jq .job)
wait_until 30 "the snapshot of job $job" bash -c \
  "[[ \$(\"$VBAK\" job show $job --json | jq -r '.vm_details[0].snapshot_state') == created ]]"
if out=$("$VBAK" lab svmotion "$SITE" "$vm" nfs-01 2>&1); then fail "Storage vMotion was not blocked during the backup"; fi
grep -q "vbak job $job" <<<"$out" || fail "the refusal does not name the job: $out"
"$VBAK" lab svmotion "$SITE" "$vm" nfs-01 --force >/dev/null
"$VBAK" lab up "$SITE" >/dev/null
wait_job_end "$job"
[[ $(job_state "$job") == failed ]] || fail "a Storage vMotion during the backup went unnoticed"
"$VBAK" job show "$job" --json | jq -r '.vm_details[0].error' | grep -q "Storage vMotion moved disk" || fail "no svMotion reason"
[[ $("$VBAK" restore-points --json | jq length) == "$before" ]] || fail "a restore point of the disturbed backup is visible"
[[ $(ls "$SITE/repo/indexes") == "$indexes_before" ]] \
  || fail "the discarded backup left index files no restore point owns: $(diff <(echo "$indexes_before") <(ls "$SITE/repo/indexes"))"
[[ $(site_json | jq '[.vms[] | .snapshots[] | select(.name | startswith("vbak-"))] | length') == 0 ]] || fail "snapshot left"
[[ $(site_json | jq -r '.vms[0].access_blocked_by // "none"') == none ]] || fail "the VM is still blocked"
pass "Storage vMotion during a backup: blocked, and when forced, detected and reported; its indexes removed"
wait_until 10 "four agents online" has_count online 4

# the next backup after all this is a normal incremental
save_content three
job=$(backup_json "$vm")
[[ $(jq -r '.state' <<<"$job") == succeeded ]] || fail "backup after the faults: $job"
check_restore "$(jq -r '.vm_details[0].restore_point' <<<"$job")" three
pass "backups go on"

# 5. a transport that fails to open falls back to the next allowed one, and the task says so:
#    the hosts' NBD-over-TLS server goes away; agents that would use NBDSSL fall back to NBD
kill -9 "$(cat "$SITE/run/nbds-ipv4.pid")"
save_content four
job=$(backup_json "$vm" --full)
[[ $(jq -r .state <<<"$job") == succeeded ]] || fail "backup without the TLS server: $job"
"$VBAK" job show "$(jq .id <<<"$job")" --json |
  jq -e '[.tasks[] | select(.transport == "nbd" and (.reason | test("after: nbdssl")))] | length > 0' >/dev/null \
  || fail "no task fell back from nbdssl to nbd with the reason"
check_restore "$(jq -r '.vm_details[0].restore_point' <<<"$job")" four
pass "a failed open falls back to the next allowed transport, and the task records why"

# 6. prune while a restore reads a restore point: the restore is held in flight (no agent online),
#    prune --keep-last 1 keeps that restore point and says which job uses it; the restore then
#    succeeds byte-identical (GC did not take its chunks)
for n in 1 2 3 4; do kill "$(cat "$SITE/run/agent-$n.pid")"; done
wait_until 10 "agents gone" has_count online 0
check_restore "$rp1" one &
restorer=$!
restore_running() { "$VBAK" jobs --json | jq -e '[.[] | select(.kind == "restore" and .state == "running")] | length == 1'; }
wait_until 30 "the restore of $rp1 running" restore_running
pruned=$("$VBAK" prune --keep-last 1 --json)
jq -e --argjson rp "$rp1" '.restore_points[] | select(.id == $rp) |
    (.decision | test("in-use")) and (.in_use[0] | test("^restore job [0-9]+ is reading it$"))' <<<"$pruned" >/dev/null \
  || fail "prune during a restore did not keep its restore point with the reason: $pruned"
(($(jq .removed <<<"$pruned") >= 1 && $(jq .kept_in_use <<<"$pruned") == 1)) || fail "prune: $pruned"
"$VBAK" prune --keep-last 1 | grep -Eq "^  $rp1 .* in-use \(kept: restore job [0-9]+ is reading it\)$" \
  || fail "prune's text does not say why $rp1 is kept: $("$VBAK" prune --keep-last 1)"
"$VBAK" lab up "$SITE" >/dev/null
wait "$restorer" || fail "the restore of $rp1 failed after a prune ran during it"
pass "prune during a restore keeps the restore point it reads, says why; the restore is byte-identical"
