#!/usr/bin/env bash
# The main job: every lab VM and the FCDs backed up, full then incremental; every restore point
# restored byte-identical to the disks as they were at its backup; restore rules; transports
# recorded per task match `vbak explain`.
source "$(dirname "$0")/lib.sh"

# format 1 (a file per chunk): the verify part flips bytes in chunk files and counts them in
# quarantine/; format 2 has the same scenarios in test_repo_format2.sh
"$VBAK" lab create "$SITE" --disk-size 16M --format 1 --heartbeat-ms 500 >/dev/null
"$VBAK" lab up "$SITE" >/dev/null
wait_until 10 "four agents online" has_count online 4
fcds=$(site_json | jq -r '[.fcds[] | "--fcd", .name] | join(" ")')

# full backup of everything
save_content full
job1=$(backup_json --all $fcds)
[[ $(jq -r .state <<<"$job1") == succeeded ]] || fail "full backup: $job1"
vms=$(site_json | jq -r '(.vms + .fcds)[].name')
for vm in $vms; do
  [[ $(jq -r --arg vm "$vm" '.vm_details[] | select(.vm == $vm) | .mode' <<<"$job1") == full ]] \
    || fail "$vm was not backed up full"
done
pass "every VM and FCD backed up (full)"

# no snapshot left on any VM, no access block left
[[ $(site_json | jq '[(.vms + .fcds)[] | .snapshots[] | select(.name | startswith("vbak-"))] | length') == 0 ]] \
  || fail "a vbak snapshot was left behind"
pass "no snapshot left behind"

# change two VMs, reset change tracking of a third, back up again: incremental where possible
"$VBAK" lab mutate "$SITE" vm-vsan-01 --percent 5 >/dev/null
"$VBAK" lab mutate "$SITE" vm-vmfs-01 --percent 3 >/dev/null
"$VBAK" lab cbt-reset "$SITE" vm-vvol-01 >/dev/null
save_content incr
job2=$(backup_json --all $fcds)
[[ $(jq -r .state <<<"$job2") == succeeded ]] || fail "incremental backup: $job2"
mode() { jq -r --arg vm "$2" '.vm_details[] | select(.vm == $vm) | .mode' <<<"$1"; }
[[ $(mode "$job2" vm-vsan-01) == incremental ]] || fail "vm-vsan-01 not incremental"
[[ $(mode "$job2" vm-vvol-01) == full ]] || fail "vm-vvol-01 after a CBT reset must be full"
reason() { jq -r --arg vm "$2" '.vm_details[] | select(.vm == $vm) | .mode_reason' <<<"$1"; }
[[ $(reason "$job1" vm-vsan-01) == "no earlier restore point of vm-vsan-01" ]] ||
  fail "first backup's reason: $(reason "$job1" vm-vsan-01)"
vvol_key=$(site_json | jq -r '.vms[] | select(.name == "vm-vvol-01") | .disks[0].key')
r=$(reason "$job2" vm-vvol-01)
[[ $r =~ ^change\ ID\ \"[^\"]+\"\ of\ disk\ $vvol_key\ of\ vm-vvol-01\ is\ unknown\ \(change\ tracking\ was\ reset,\ or\ the\ ID\ is\ from\ another\ disk\)$ ]] \
  || fail "the reason for the full backup after a CBT reset: $r"
pass "incremental where change IDs are valid, full after a CBT reset (reason shown)"

# the incremental read only the chunks that hold changes: far less than the full
read_bytes() { "$VBAK" job show "$(jq .id <<<"$1")" --json |
  jq '[.tasks[] | select(.vm == "vm-vsan-01" and .kind == "backup" and .state == "done") | .bytes] | add'; }
new_full=$(read_bytes "$job1")
new_incr=$(read_bytes "$job2")
# 5% of 64 KiB blocks changed: with 256 KiB chunks about a fifth of the chunks hold a change
((new_incr * 100 < new_full * 40)) || fail "the incremental read $new_incr bytes, the full $new_full"
[[ $("$VBAK" restore-point show "$(rp_of "$job2" vm-vsan-01)" --json | jq .parent) == "$(rp_of "$job1" vm-vsan-01)" ]] \
  || fail "incremental's parent"
pass "incremental reads only changed chunks ($new_incr vs $new_full bytes)"

# job show: each VM's wall time per phase, every phase of a backup in order, none negative; the
# read phase's bytes are the bytes its read tasks read
phases='["snapshot","prepare","map","read","index","commit","remove"]'
for j in "$job1" "$job2"; do
  show=$("$VBAK" job show "$(jq .id <<<"$j")" --json)
  t=$(jq -c '.vm_details[] | select(.vm == "vm-vsan-01") | .timing' <<<"$show")
  [[ $(jq -c '[.[].phase]' <<<"$t") == "$phases" ]] || fail "phases of vm-vsan-01: $t"
  jq -e 'all(.[]; .ms >= 0 and .start_ms > 0) and ([.[].start_ms] == ([.[].start_ms] | sort))' \
    <<<"$t" >/dev/null || fail "phase times of vm-vsan-01: $t"
  tb=$(jq '[.tasks[] | select(.vm == "vm-vsan-01" and .kind == "backup" and .state == "done") | .bytes] | add' <<<"$show")
  [[ $(jq '.[] | select(.phase == "read") | .bytes' <<<"$t") == "$tb" ]] || fail "read bytes $t, tasks $tb"
done
text=$("$VBAK" job show "$(jq .id <<<"$job1")")
grep -q "vm-vsan-01: time per phase: snapshot [0-9.]* s, prepare" <<<"$text" \
  || fail "job show's text lacks the time per phase: $text"
pass "job show: time per phase (in order, read bytes = the read tasks' bytes)"

# every restore point restores byte-identical: full chain and incremental chain
for vm in $vms; do
  check_restore "$(rp_of "$job1" "$vm")" full
  check_restore "$(rp_of "$job2" "$vm")" incr
done
pass "every restore point (full and incremental) restores byte-identical"

# restore-points listing and time filters
all=$("$VBAK" restore-points --json | jq length)
[[ $all == $((2 * $(wc -w <<<"$vms"))) ]] || fail "restore-points lists $all"
"$VBAK" restore-points vm-vsan-01 --json | jq -e 'length == 2 and all(.[]; has("id") and has("vm")
  and has("created") and has("kind") and has("state") and has("parent"))' >/dev/null || fail "restore-points JSON"
[[ $("$VBAK" restore-points vm-vsan-01 --before 2000-01-01T00:00:00Z --json | jq length) == 0 ]] || fail "--before"
[[ $("$VBAK" restore-points vm-vsan-01 --after 2000-01-01T00:00:00+02:00 --json | jq length) == 2 ]] || fail "--after"
newest=$("$VBAK" restore-points vm-vsan-01 --json | jq '.[-1].id')
[[ $("$VBAK" restore-points vm-vsan-01 --last 1 --json | jq -c 'map(.id)') == "[$newest]" ]] || fail "--last 1 is not the newest"
[[ $("$VBAK" restore-points --last 3 --json | jq -c 'map(.id)') == "$("$VBAK" restore-points --json | jq -c '.[-3:] | map(.id)')" ]] \
  || fail "--last 3 is not the newest three, oldest first"
"$VBAK" jobs --json | jq -e 'all(.[]; has("id") and has("kind") and has("state") and has("vms")
  and has("started") and has("finished") and has("error"))' >/dev/null || fail "jobs JSON"
pass "catalog queries"

# restore into a VM with a snapshot: refused with the reason, then allowed with --delete-snapshots
rp_nfs=$(rp_of "$job2" vm-nfs-01)
if out=$("$VBAK" restore "$rp_nfs" --to-vm 2>&1); then fail "restore into a VM with snapshots was allowed"; fi
grep -qF "VM vm-nfs-01 has 1 snapshot(s)" <<<"$out" && grep -qF "restoring into a VM with snapshots is refused" <<<"$out" \
  || fail "no reason: $out"
[[ $(site_json | jq '.vms[] | select(.name == "vm-nfs-01") | .snapshots | length') == 1 ]] \
  || fail "the refused restore touched the VM's snapshot"
"$VBAK" lab mutate "$SITE" vm-nfs-01 --percent 20 >/dev/null # the VM drifts from the backup
job=$("$VBAK" restore "$rp_nfs" --to-vm --delete-snapshots --wait --json)
[[ $(jq -r .state <<<"$job") == succeeded ]] || fail "restore --to-vm --delete-snapshots: $job"
[[ $(site_json | jq '.vms[] | select(.name == "vm-nfs-01") | .snapshots | length') == 0 ]] || fail "snapshots not deleted"
file=$(site_json | jq -r '.vms[] | select(.name == "vm-nfs-01") | .disks[0].file_uri')
key=$(site_json | jq -r '.vms[] | select(.name == "vm-nfs-01") | .disks[0].key')
cmp -s "$file" "$TEST_DIR/expect/incr/vm-nfs-01-$key.raw" || fail "the VM's disk does not hold the restored bytes"
pass "restore into a VM: refused while it has snapshots, then done with --delete-snapshots"

# the transport recorded per task matches the policy (vbak explain) for that disk x agent
tasks=$("$VBAK" job show "$(jq .id <<<"$job1")" --json | jq -c '.tasks[] | select(.state == "done")')
checked=0
while read -r t; do
  vm=$(jq -r .vm <<<"$t"); disk=$(jq -r .disk <<<"$t"); agent=$(jq -r .agent <<<"$t")
  used=$(jq -r .transport <<<"$t")
  chosen=$("$VBAK" explain "$vm" --agent "$agent" --json |
    jq -r --arg d "$disk" '.[] | select(.disk_key == $d) | .chosen')
  [[ $used == "$chosen" ]] || fail "task of $vm/$disk on $agent used $used, explain says $chosen"
  checked=$((checked + 1))
done <<<"$tasks"
((checked > 10)) || fail "only $checked tasks checked"
pass "transport of each of $checked tasks matches vbak explain"

# explain on the default site shows the release notes' refusals
ex() { "$VBAK" explain "$@" --json; }
ex vm-vsan-01 | jq -e '[.[] | .refused[] | select(.mode == "san") | .reason] | any(test("vsan"))' >/dev/null || fail "SAN on vsan"
ex vm-vvol-01 | jq -e '[.[] | .refused[] | select(.mode == "san") | .reason] | any(test("VVOL|vVol"))' >/dev/null || fail "SAN on VVOL"
ex vm-vsan-01 --agent agent-1 | jq -e '[.[] | .refused[] | select(.mode == "hotadd") | .reason] | any(test("vSAN"))' >/dev/null || fail "HotAdd vSAN"
ex vm-vvol-clone-01 | jq -e '[.[] | .refused[] | select(.mode == "hotadd") | .reason] | any(test("linked clone"))' >/dev/null || fail "HotAdd linked clone"
ex vm-cloud-01 | jq -e '[.[] | .refused[] | select(.mode == "nbd") | .reason] | any(test("encrypt"))' >/dev/null || fail "NBD where encryption is required"
pass "explain refuses SAN on vsan/VVOL, HotAdd for vSAN and the vVol clone, NBD where encryption is required"

# retention: keep the last restore point of each VM; the chain's parents go, the children stay
# restorable (indexes are self-contained), unreferenced chunks are collected
nvms=$(wc -w <<<"$vms")
rc=0; "$VBAK" prune --keep-last 0 2>"$TEST_DIR/err" || rc=$?
[[ $rc == 2 ]] && grep -q "at least one of --keep-last" "$TEST_DIR/err" \
  || fail "prune --keep-last 0 is a usage error: rc $rc, $(cat "$TEST_DIR/err")"
chunks_before=$("$VBAK" repo stats "$SITE/repo" --json | jq .chunks)
dry=$("$VBAK" prune --keep-last 1 --dry-run --json)
[[ $("$VBAK" restore-points --json | jq length) == $((2 * nvms)) &&
   $("$VBAK" repo stats "$SITE/repo" --json | jq .chunks) == "$chunks_before" ]] \
  || fail "--dry-run removed something"
[[ $(jq '[.restore_points[] | select(.decision == "remove")] | length' <<<"$dry") == "$nvms" ]] \
  || fail "the policy would not remove exactly the older restore point of each VM: $dry"
[[ $(jq .removed <<<"$dry") == "$nvms" ]] || fail "--dry-run does not say how many would go: $dry"
would_sweep=$(jq .gc.swept <<<"$dry")
((would_sweep > 0)) || fail "--dry-run does not estimate what garbage collection would free: $dry"
"$VBAK" prune --keep-last 1 --dry-run | grep -q "^would remove $nvms restore point(s); garbage collection would then free about $would_sweep chunk(s)" \
  || fail "--dry-run text: $("$VBAK" prune --keep-last 1 --dry-run | tail -2)"
pruned=$("$VBAK" prune --keep-last 1 --json)
[[ $(jq .removed <<<"$pruned") == "$nvms" ]] || fail "prune: $pruned"
[[ $(jq .gc.swept <<<"$pruned") == "$would_sweep" ]] || fail "the dry run's estimate $would_sweep is not what prune swept: $pruned"
[[ $("$VBAK" restore-points --json | jq length) == "$nvms" ]] || fail "restore points after prune"
chunks_after=$("$VBAK" repo stats "$SITE/repo" --json | jq .chunks)
((chunks_after < chunks_before)) || fail "garbage collection removed no chunk ($chunks_before -> $chunks_after)"
check_restore "$(rp_of "$job2" vm-vsan-01)" incr
check_restore "$(rp_of "$job2" vm-vmfs-01)" incr
pass "prune keeps the newest of each VM, collects $((chunks_before - chunks_after)) chunks as its dry run said; the rest restores byte-identical; --keep-last 0 is a usage error"

# verify: good, then a flipped byte is named by disk and offset, and restore refuses it
rp=$(rp_of "$job2" vm-vmfs-01)
"$VBAK" verify "$rp" >/dev/null || fail "verify of a good restore point"
[[ $("$VBAK" restore-point show "$rp" --json | jq -r .verify) == ok ]] || fail "verify state"
# flip one byte in every chunk file: every chunk of the restore point is now corrupt
find "$SITE/repo/chunks" -type f -size +1k -print0 |
  while IFS= read -r -d '' chunk; do
    flip_byte "$chunk" 200
  done
nchunks=$("$VBAK" restore-point show "$rp" --json | jq '[.disks[].chunk_count] | add')
if out=$("$VBAK" verify "$rp" --json); then fail "verify missed corrupt chunks"; fi
jq -e '.ok == false and .bad_chunks == (.bad | length) and .bad_chunks > 0 and
       all(.bad[]; (.disk | type) == "string" and (.offset | type) == "number" and
                   (.digest | length) == 64 and (.problem | length) > 0)' <<<"$out" >/dev/null \
  || fail "verify --json does not list every bad chunk with disk, offset, digest, problem: $out"
qdir="$SITE/repo/quarantine"
[[ $(ls "$qdir" | wc -l) == $(jq '[.bad[].digest] | unique | length' <<<"$out") ]] \
  || fail "the bad chunks were not all moved to quarantine: $(ls "$qdir" | wc -l) vs $out"
[[ $(stat -c %a "$qdir") == 700 && $(stat -c %a "$qdir/$(ls "$qdir" | head -1)") == 600 ]] \
  || fail "quarantine is not private"
if out=$("$VBAK" verify "$rp"); then fail "verify of quarantined chunks passed"; fi
grep -Eq "^  disk 2000 offset [0-9]+: the chunk is in quarantine" <<<"$out" || fail "verify does not name disk and offset: $out"
grep -q "disk 2000 offset [0-9]*: disk" <<<"$out" && fail "verify repeats its prefix: $out"
grep -q "the next backup of vm-vmfs-01 reads every chunk again" <<<"$out" || fail "verify does not say how to repair: $out"
[[ $("$VBAK" restore-point show "$rp" --json | jq -r .verify) == failed ]] || fail "verify state not recorded"
pass "verify catches a flipped byte, names disk and offset once, lists every bad chunk in --json, quarantines it"

job=$("$VBAK" restore "$rp" --to-dir "$TEST_DIR/bad" --wait --json) && fail "a restore of corrupt chunks succeeded"
jq -r .error <<<"$job" | grep -q "offset" || fail "the failed restore does not name the offset: $job"
pass "a restore never writes bytes whose digest does not match: it stops naming disk and offset"

# the next backup repairs it: it reads every chunk again (its parent failed verify), stores the
# quarantined ones anew instead of trusting the bad files, and its restore point verifies clean
job=$(backup_json vm-vmfs-01)
[[ $(jq -r .state <<<"$job") == succeeded ]] || fail "backup after verify: $job"
[[ $(jq -r '.vm_details[0].mode' <<<"$job") == full ]] || fail "the backup after a failed verify was not full: $job"
rp_new=$(rp_of "$job" vm-vmfs-01)
"$VBAK" verify "$rp_new" >"$TEST_DIR/out" || fail "the restore point after the repair does not verify: $(cat "$TEST_DIR/out")"
check_restore "$rp_new" incr
pass "the backup after a failed verify stores the quarantined chunks again; its restore point verifies clean and restores byte-identical"
