#!/usr/bin/env bash
# The job engine and outages: the hosts' disk servers gone for three seconds during a backup are
# ridden out (failed tasks back off and run again) and leave no snapshot; gone for good, the job
# fails with the tasks' own error; a snapshot removal that fails is retried in the background and
# shown as pending meanwhile; an error no retry can mend (a chunk missing on restore) fails at
# once. Retries use the default first delay, doubling (1 s, 2 s, 4 s), capped at 4 s and given
# six attempts, so that an outage that lasts 3 s plus however long `lab up` takes on a loaded
# machine (seen over 4 s) is still ridden out; snapshot removals use a short back-off.
source "$(dirname "$0")/lib.sh"

"$VBAK" lab create "$SITE" --vms 1 --disk-size 16M --heartbeat-ms 500 >/dev/null
printf '%s\n' 'snapshot_retry_ms = "300"' 'max_attempts = "6"' 'retry_max_delay_ms = "4000"' \
  >>"$SITE/coordinator.conf"
"$VBAK" lab up "$SITE" >/dev/null
wait_until 10 "four agents online" has_count online 4
vm=$(site_json | jq -r '.vms[0].name')

job_show() { "$VBAK" job show "$1" --json; }
job_state() { job_show "$1" | jq -r .state; }
wait_job_end() { wait_until 60 "job $1 ends" bash -c "[[ \$(\"$VBAK\" job show $1 --json | jq -r .state) != running ]]"; }
vbak_snapshots() { site_json | jq --arg vm "$vm" '[.vms[] | select(.name == $vm) | .snapshots[] | select(.name | startswith("vbak-"))] | length'; }
task_failed() { job_show "$1" | jq -e '[.tasks[] | select(.failures > 0 or .error != null)] | length > 0'; }
# only agent-4 (NBD only) stays: the VM's disks are then read over the hosts' disk servers
nbd_only() {
  for n in 1 2 3; do kill "$(cat "$SITE/run/agent-$n.pid")"; done
  wait_until 10 "agent-4 alone" has_count online 1
}
# every nbdkit of the site (lab up starts them again only when none runs)
disk_servers_down() {
  for f in "$SITE"/run/*.pid; do
    case $(basename "$f") in coordinator.pid | agent-*.pid) ;; *) kill -9 "$(cat "$f")" ;; esac
  done
}

# 1. the disk servers stop, a backup starts, they come back three seconds after its first failure
nbd_only
save_content one
disk_servers_down
job=$("$VBAK" backup "$vm" --json | jq .job)
wait_until 30 "a task of job $job fails" task_failed "$job"
sleep 3 # the outage
"$VBAK" lab up "$SITE" >/dev/null
wait_job_end "$job"
[[ $(job_state "$job") == succeeded ]] || fail "a 3 s outage failed the job: $(job_show "$job" | jq -c '{error, tasks: [.tasks[] | {state, attempts, failures, error}]}')"
job_show "$job" | jq -e '[.tasks[] | select(.failures > 0)] | length > 0' >/dev/null ||
  fail "no task saw the outage"
[[ $(vbak_snapshots) == 0 && $(job_show "$job" | jq -r '.vm_details[0].snapshot_state') == removed ]] ||
  fail "a snapshot was left on $vm"
check_restore "$(job_show "$job" | jq -r '.vm_details[0].restore_point')" one
pass "a 3 s outage of the disk servers was ridden out; no snapshot left; restore byte-identical"
# progress counts the bytes the read tasks read, not the map tasks' disk spans; phases by name
p=$(job_show "$job" | jq -c .progress)
read=$(job_show "$job" | jq '[.tasks[] | select(.kind == "backup") | .bytes] | add')
[[ $(jq .bytes_total <<<"$p") == "$read" && $(jq .bytes_done <<<"$p") == "$read" ]] ||
  fail "progress $p does not count the $read bytes the read tasks read"
[[ $(jq -c '[.phases[] | [.name, .state]]' <<<"$p") == '[["snapshot","done"],["map","done"],["read","done"],["index","done"],["commit","done"]]' ]] ||
  fail "phases of a finished backup: $p"
pass "progress: $(jq .bytes_total <<<"$p") bytes read of $(jq .tasks <<<"$p") tasks, phases snapshot map read index commit"
wait_until 10 "four agents online" has_count online 4

# 2. gone for good: the job's error is what the tasks said, not "no online agent may reach"
nbd_only
disk_servers_down
job=$("$VBAK" backup "$vm" --full --json | jq .job)
wait_job_end "$job"
err=$(job_show "$job" | jq -r .error)
[[ $(job_state "$job") == failed ]] || fail "job $job without disk servers: $(job_show "$job" | jq -c "[.tasks[] | {agent, transport, state, error}]")"
last=$(job_show "$job" | jq -r '[.tasks[] | select(.state == "failed")][0].error')
[[ $err == *"task failed 6 times: $last" && $err != *"no online agent may reach"* ]] ||
  fail "the job's error hides the tasks' one: job: $err; task: $last"
[[ $(vbak_snapshots) == 0 ]] || fail "the failed job left its snapshot"
pass "disk servers gone for good: the job says the tasks' error ($err)"
"$VBAK" lab up "$SITE" >/dev/null
wait_until 10 "four agents online" has_count online 4

# 3. the snapshot cannot be removed for a while (its image file is immutable): the backup is
#    kept, the removal is pending (job show, status) and retried until it succeeds
for n in 1 2 3 4; do kill "$(cat "$SITE/run/agent-$n.pid")"; done
wait_until 10 "agents gone" has_count online 0
save_content two
job=$("$VBAK" backup "$vm" --full --json | jq .job)
wait_until 30 "the snapshot of job $job" bash -c \
  "[[ \$(\"$VBAK\" job show $job --json | jq -r '.vm_details[0].snapshot_state') == created ]]"
p=$(job_show "$job" | jq -c .progress) # no agent: the map tasks wait
[[ $(jq -r .phase <<<"$p") == map && $(jq -c '[.phases[].state]' <<<"$p") == '["done","running","pending","pending","pending"]' && $(jq .bytes_total <<<"$p") == 0 ]] ||
  fail "progress while the map tasks wait: $p"
snap=$(site_json | jq -r --arg vm "$vm" --arg n "vbak-$job" '.vms[] | select(.name == $vm) | .snapshots[] | select(.name == $n) | .id')
mapfile -t files < <(find "$SITE"/disks* -type f -name "*@$snap")
((${#files[@]} > 0)) || fail "no image file of snapshot $snap"
chattr +i "${files[@]}" || fail "chattr +i is not available here"
unfreeze() { local rc=$?; chattr -i "${files[@]}" 2>/dev/null || true; return $rc; }
trap 'unfreeze; cleanup' EXIT
"$VBAK" lab up "$SITE" >/dev/null
wait_job_end "$job"
[[ $(job_state "$job") == succeeded ]] || fail "backup whose snapshot cannot be removed: $(job_show "$job" | jq -c .vm_details)"
wait_until 10 "a failed removal recorded" bash -c \
  "\"$VBAK\" job show $job --json | jq -e '.vm_details[0] | .snapshot_pending and (.snapshot_error | test(\"not permitted\"))'"
[[ $(counter snapshots_pending) == 1 ]] || fail "status does not count the pending removal"
"$VBAK" status | grep -q "pending: job $job VM $vm: snapshot $snap" || fail "status does not list it: $("$VBAK" status)"
"$VBAK" job show "$job" | grep -q "snapshot vbak-$job: removal pending" || fail "job show does not say it: $("$VBAK" job show "$job")"
[[ $(vbak_snapshots) == 1 ]] || fail "the snapshot went although its file could not be deleted"
chattr -i "${files[@]}"
wait_until 20 "the snapshot removed" bash -c \
  "[[ \$(\"$VBAK\" job show $job --json | jq -r '.vm_details[0].snapshot_state') == removed ]]"
[[ $(vbak_snapshots) == 0 && $(counter snapshots_pending) == 0 ]] || fail "the snapshot is still there"
check_restore "$(job_show "$job" | jq -r '.vm_details[0].restore_point')" two
pass "a snapshot removal that failed was pending (job show, status), retried, and ended removed"

# 4. an encrypted disk into this unencrypted repository: allowed, and said on the job
wait_until 10 "four agents online" has_count online 4
enc=$(site_json | jq -r '[.fcds[] | select(.encrypted)][0].name')
plain=$(site_json | jq -r '[.fcds[] | select(.encrypted | not)][0].name')
fjob=$("$VBAK" backup --fcd "$plain" --fcd "$enc" --wait --json 2>"$TEST_DIR/note.err")
[[ $(jq -r .state <<<"$fjob") == succeeded ]] || fail "backup of the FCDs: $fjob"
note=$(jq -r --arg f "$enc" '.vm_details[] | select(.vm == $f) | .notes[0]' <<<"$fjob")
[[ $note == "disk "*" of $enc is encrypted but the repository is not: its plaintext is stored unencrypted"* ]] ||
  fail "no note on the encrypted FCD: $(jq -c .vm_details <<<"$fjob")"
[[ $(jq --arg f "$plain" '.vm_details[] | select(.vm == $f) | .notes | length' <<<"$fjob") == 0 ]] ||
  fail "a note on the plain FCD"
grep -qF "vbak: note: $note" "$TEST_DIR/note.err" || fail "the CLI did not say the note: $(cat "$TEST_DIR/note.err")"
pass "an encrypted disk into an unencrypted repository: backed up, with the note: $note"

# 5. a chunk missing on restore cannot come back by retrying: the restore fails at once
rp=$(job_show "$job" | jq -r '.vm_details[0].restore_point')
find "$SITE/repo/packs" -type f -delete # every chunk of the restore point is gone
out=$("$VBAK" restore "$rp" --to-dir "$TEST_DIR/out" --wait --json) && fail "a restore with a missing chunk succeeded"
rjob=$(jq .id <<<"$out")
bad=$(job_show "$rjob" | jq -c '[.tasks[] | select(.state == "failed")][0]')
[[ $(jq .attempts <<<"$bad") == 1 && $(jq .failures <<<"$bad") == 1 ]] ||
  fail "the task with a missing chunk was retried: $bad"
jq -r .error <<<"$out" | grep -q "not retried" || fail "the job does not say why it was not retried: $(jq -r .error <<<"$out")"
pass "a missing chunk fails the restore on its first attempt: $(jq -r .error <<<"$out")"
