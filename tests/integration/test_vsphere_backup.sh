#!/usr/bin/env bash
# Backups of vSphere VMs through the coordinator: a coordinator with provider = "vsphere" against
# the vCenter simulator fixture snapshots a VM, agents read its disks' flat files over the
# datastore HTTP file service (route mode "vsfile"), and `vbak restore --to-dir` gives back the
# bytes the fixture wrote into them. The simulator has no changed block tracking: every backup is
# full and says why. A wrong thumbprint, a wrong password or a password file others may read
# stops the coordinator at start. `vbak explain` and the tasks of a job agree on what the provider
# can do (only the file service, for reads). The fixture's oddities the stock simulator has too
# (datastore type OTHER, a VM name with "%2f", CBT on without a change ID, an empty flat file,
# disk keys repeated across VMs) each back up.
source "$(dirname "$0")/lib.sh"

source "$(dirname "$0")/vsphere_site.sh"
# The coordinator and the agents reach the simulator through a TCP relay, so that the network
# between them can blink (every connection reset, new ones refused, for 4 s).
start_relay 4000
vsphere_site 4 "$RELAY_URL"

# ---- refusals at start: wrong thumbprint, wrong password ----
wrong=00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF
bad_conf() { # bad_conf NAME LINES...: the base config with its own catalog and the given keys
  local f=$TEST_DIR/$1.conf
  shift
  sed "s|^catalog = .*|catalog = \"$TEST_DIR/$(basename "$f" .conf).db\"|; /^pid_file = /d" \
    "$TEST_DIR/base.conf" >"$f"
  printf '%s\n' 'provider = "vsphere"' "vsphere_url = \"$(fx .url)\"" "vsphere_user = \"$(fx .user)\"" "$@" >>"$f"
  echo "$f"
}
f=$(bad_conf thumb "vsphere_password_file = \"$PW\"" "vsphere_thumbprint = \"$wrong\"")
if out=$("$VB_BIN/vbak-coordinator" --config "$f" 2>&1); then fail "the coordinator started with a wrong thumbprint"; fi
# (other lines are log lines; the refusal is the one "vbak-coordinator: ..." line)
err=$(grep '^vbak-coordinator: ' <<<"$out") || fail "no refusal line: $out"
grep -q "expected SHA-256 $wrong" <<<"$err" && grep -q "server presented $(fx .thumbprint)" <<<"$err" ||
  fail "wrong thumbprint message: $out"
[[ $(wc -l <<<"$err") == 1 ]] || fail "the refusal is not one line: $out"
pass "wrong thumbprint: the coordinator refuses to start ($err)"
# the right thumbprint gets past the login, as far as binding its sockets (made to clash here)
agent_ep=$(conf_value "$TEST_DIR/base.conf" agent_endpoint)
f=$(bad_conf thumb_ok "vsphere_password_file = \"$PW\"" "vsphere_thumbprint = \"$(fx .thumbprint)\"")
sed -i "s|^control_endpoint = .*|control_endpoint = \"$agent_ep\"|" "$f"
if out=$("$VB_BIN/vbak-coordinator" --config "$f" 2>&1); then fail "two sockets bound one endpoint"; fi
grep -q "cannot listen on $agent_ep" <<<"$out" || fail "with the right thumbprint the coordinator should get as far as its sockets: $out"
pass "the right thumbprint logs in"
(umask 077 && echo 'not the password' >"$TEST_DIR/bad.password")
f=$(bad_conf pass "vsphere_password_file = \"$TEST_DIR/bad.password\"" "vsphere_ca_file = \"$(fx .ca_file)\"")
if out=$("$VB_BIN/vbak-coordinator" --config "$f" 2>&1); then fail "the coordinator started with a wrong password"; fi
err=$(grep '^vbak-coordinator: ' <<<"$out") || fail "no refusal line: $out"
grep -q "wrong user name or password" <<<"$err" && [[ $(wc -l <<<"$err") == 1 ]] || fail "wrong password message: $out"
pass "wrong password: the coordinator refuses to start ($err)"
# a password file others may read is refused, as the token file is
cp "$PW" "$TEST_DIR/open.password" && chmod 644 "$TEST_DIR/open.password"
f=$(bad_conf open "vsphere_password_file = \"$TEST_DIR/open.password\"" "vsphere_ca_file = \"$(fx .ca_file)\"")
if out=$("$VB_BIN/vbak-coordinator" --config "$f" 2>&1); then fail "the coordinator started with a password file of mode 644"; fi
err=$(grep '^vbak-coordinator: ' <<<"$out") || fail "no refusal line: $out"
grep -q "password file $TEST_DIR/open.password is readable by others (mode 644); chmod 600 it" <<<"$err" ||
  fail "open password file message: $out"
pass "password file of mode 644: the coordinator refuses to start ($err)"

# ---- backups of simulator VMs through the agents ----
# agent-1 is a proxy VM on vbak-vm1's own host, sitting on its datastore: every placement rule
# would let it HotAdd vbak-vm1's disks, but no agent here has VDDK (vddk_libdir), and HotAdd goes
# only through VixDiskLib (test_vsphere_vddk.sh has agents with it)
vm_host=$(fx '.vms[] | select(.name == "vbak-vm1") | .host')
sed -i "s|^host = .*|host = \"$vm_host\"|; s|^datastore = .*|datastore = \"vmfs-01\"|" "$SITE/agent-1.conf"
"$VBAK" lab up "$SITE" >/dev/null
wait_until 10 "four agents online" has_count online 4

vm=vbak-vm1
job=$(backup_json "$vm")
[[ $(jq -r .state <<<"$job") == succeeded ]] || fail "backup of $vm: $job"
[[ $(jq -r '.vm_details[0].mode' <<<"$job") == full ]] || fail "$vm not backed up full: $job"
jq -r '.vm_details[0].mode_reason' <<<"$job" | grep -q "changed block tracking is unavailable for disk" ||
  fail "the full backup does not say change tracking is unavailable: $job"
[[ $(jq -r '.vm_details[0].snapshot_state' <<<"$job") == removed ]] || fail "snapshot left: $job"
grep -q "allocated-blocks-unavailable mode=vsfile" "$SITE"/log/agent-*.log ||
  fail "no agent said the file service has no allocation map"
pass "$vm backed up full over the file service: $(jq -r '.vm_details[0].mode_reason' <<<"$job")"

# a second backup is full again, for the same reason (the simulator has no change IDs to keep)
job2=$(backup_json "$vm")
[[ $(jq -r .state <<<"$job2") == succeeded && $(jq -r '.vm_details[0].mode' <<<"$job2") == full ]] ||
  fail "second backup of $vm: $job2"
jq -r '.vm_details[0].mode_reason' <<<"$job2" | grep -q "changed block tracking is unavailable for disk" ||
  fail "second backup's reason: $job2"
pass "the next backup is full too, and says why"

# --full: the reason is that, one sentence, not what change tracking would have said
jobf=$(backup_json "$vm" --full)
[[ $(jq -r .state <<<"$jobf") == succeeded ]] || fail "--full backup of $vm: $jobf"
[[ $(jq -r '.vm_details[0].mode_reason' <<<"$jobf") == "a full backup was asked for" ]] ||
  fail "the reason of a --full backup: $(jq -r '.vm_details[0].mode_reason' <<<"$jobf")"
pass "a --full backup says: a full backup was asked for"

n=$(restore_and_compare "$job" "$vm")
pass "$vm: $n disks restored byte for byte from the first restore point"
n=$(restore_and_compare "$job2" "$vm")
pass "$vm: $n disks restored byte for byte from the second restore point"

# a VM and disk whose names hold a space, '%', '#', '&' and a non-ASCII letter; its disk has key
# 2000 as vbak-vm1's first disk has: each restore point must give back its own VM's bytes
sp=$(fx '.vms[] | select(.name | startswith("sp")) | .name')
[[ $(fx ".vms[] | select(.name == \"$sp\") | .disks[0].key") == 2000 &&
   $(fx '.vms[] | select(.name == "vbak-vm1") | .disks[0].key') == 2000 ]] ||
  fail "the fixture's VMs do not share disk key 2000"
job3=$(backup_json "$sp")
[[ $(jq -r .state <<<"$job3") == succeeded ]] || fail "backup of '$sp': $job3"
n=$(restore_and_compare "$job3" "$sp")
pass "'$sp' ($(fx '.vms[] | select(.name | startswith("sp")) | .disks[0].flat_path')) backed up and restored byte for byte"

# ---- explain and the tasks agree: without VDDK, agents read over the file service only ----
ex=$("$VBAK" explain "$vm" --json)
[[ $(jq '[.[] | select(.chosen != "nbdssl" or .route != "vsfile")] | length' <<<"$ex") == 0 ]] ||
  fail "explain chose something other than the file service: $ex"
jq -e '[.[] | select(.agent == "agent-1")] | length == 2 and all(.[];
  (.refused[] | select(.mode == "hotadd") | .reason) ==
  "agent agent-1 has no vddk_libdir: VixDiskLib modes unavailable; the datastore file service is used")' <<<"$ex" >/dev/null ||
  fail "HotAdd not refused for want of VDDK on the VM's own host: $ex"
jq -e 'all(.[]; (.why | test("HTTPS datastore file service")) and (.why | test("NFC") | not))' \
  <<<"$ex" >/dev/null || fail "the reason does not say the file service: $ex"
jq -e 'all(.[]; .disk == .disk_key and (.disk | test("^[0-9]+$")))' <<<"$ex" >/dev/null ||
  fail "explain does not name disks by key: $ex"
out=$("$VBAK" explain "$vm")
grep -q "^$vm / disk 2000 .* on vmfs-01 / agent" <<<"$out" || fail "explain text names no disk key: $out"
checked=$(tasks_agree "$(jq .id <<<"$job")" "$ex" "" vsfile)
pass "explain and the $checked tasks agree: nbdssl over route vsfile, HTTPS datastore file service"

# a restore into the vSphere VM writes through VixDiskLib only, and no agent here has it:
# explain --restore and the job both say so (the file service is read-only)
ex=$("$VBAK" explain "$vm" --restore --json)
ro="VixDiskLib modes unavailable; no other route writes into the disk (the datastore file service is read-only)"
jq -e --arg ro "$ro" 'all(.[]; .chosen == null and
  ((.refused[] | select(.mode == "nbdssl") | .reason) | endswith($ro)))' <<<"$ex" >/dev/null ||
  fail "explain --restore chose a mode no agent here can write with: $ex"
r=$("$VBAK" restore "$(rp_of "$job" "$vm")" --to-vm --wait --json) || true
[[ $(jq -r .state <<<"$r") == failed ]] || fail "a restore into the vSphere VM did not fail: $r"
jq -r .error <<<"$r" | grep -qF "$ro" || fail "no reason for the refused restore: $r"
[[ $("$VBAK" job show "$(jq .id <<<"$r")" --json | jq '[.tasks[] | select(.agent != null and .agent != "")] | length') == 0 ]] ||
  fail "a task of the refused restore was sent to an agent: $r"
pass "restore into the vSphere VM without VDDK: explain --restore and the job agree ($ro)"

# ---- what the stock simulator has: datastore type OTHER, a name with %2f, CBT on without a
# change ID, a 0-byte flat file, disk key 203 in two VMs ----
esc=$(fx '.vms[] | select(.name | test("%2f")) | .name')
[[ $esc == *"%2f"* && $esc == *"#"* && $esc == *" "* && $(fx ".vms[] | select(.name == \"$esc\") | .disks[0].datastore") == LocalDS_0 ]] ||
  fail "the fixture has no VM '$esc' on LocalDS_0"
ex=$("$VBAK" explain "$esc" --json)
jq -e 'all(.[]; .chosen == "nbdssl" and ((.refused[] | select(.mode == "hotadd") | .reason) |
  test("type OTHER, a kind of storage the policy does not know")))' <<<"$ex" >/dev/null ||
  fail "explain of a disk on an OTHER datastore: $ex"
pass "datastore type OTHER: network modes only, and explain says why"
job4=$(backup_json "$esc")
[[ $(jq -r .state <<<"$job4") == succeeded && $(jq -r '.vm_details[0].mode' <<<"$job4") == full ]] ||
  fail "backup of '$esc' (CBT on, no change ID yet): $job4"
rps=$("$VBAK" restore-points "$esc" --json)
[[ $(jq -r '.[0].vm' <<<"$rps") == "$esc" && $(jq length <<<"$rps") == 1 ]] ||
  fail "restore point of '$esc' not listed under its name: $rps"
pass "'$esc' (CBT on, no change ID yet) backed up full, restore point listed under its name"

empty=empty-flat
job5=$(backup_json "$empty")
[[ $(jq -r .state <<<"$job5") == succeeded ]] || fail "backup of $empty (0-byte flat file): $job5"
rp5=$(rp_of "$job5" "$empty")
"$VBAK" restore-point show "$rp5" --json | jq -e '.disks[0].key == "203" and .disks[0].capacity == 1048576' >/dev/null ||
  fail "restore point of $empty: $("$VBAK" restore-point show "$rp5" --json)"
pass "$empty: a 1 MiB disk whose flat file is empty backs up"
# disk 203 of both VMs: each restore point holds its own disk's data (the file service has no
# allocation map, so all 2 MiB of the flat file were read; the empty flat file gave nothing)
rp4=$(rp_of "$job4" "$esc")
d4=$("$VBAK" restore-point show "$rp4" --json | jq -c '.disks[0] | {key, logical_bytes}')
d5=$("$VBAK" restore-point show "$rp5" --json | jq -c '.disks[0] | {key, logical_bytes}')
[[ $d4 == '{"key":"203","logical_bytes":2097152}' && $d5 == '{"key":"203","logical_bytes":0}' ]] ||
  fail "disk 203 of '$esc' ($d4) and of $empty ($d5) are mixed up"
pass "disk key 203 in two VMs: each restore point holds its own disk ($d4, $d5)"


# the names crossing the wire: '%2f', '#', '%' and spaces restore into the right file, exactly
n=$(restore_and_compare "$job4" "$esc")
pass "'$esc': $n disk(s) restored byte for byte into the file of its own name"
# the disk that read short: its task says so, and its image is the disk's full length of zeros
jq -e '[.tasks[].reason] | any(test("warning: .* opened with 0 bytes, fewer than its capacity of 1048576"))' \
  <<<"$("$VBAK" job show "$(jq -r .id <<<"$job5")" --json)" >/dev/null ||
  fail "the short read of $empty is no warning on its task: $("$VBAK" job show "$(jq -r .id <<<"$job5")" --json | jq -c '.tasks')"
out5=$TEST_DIR/restore-empty
r=$("$VBAK" restore "$rp5" --to-dir "$out5" --wait --json) || fail "restore of $rp5: $r"
img=("$out5"/*-203.raw)
[[ -f ${img[0]} && $(stat -c %s "${img[0]}") == 1048576 ]] || fail "restore of $empty: $(ls -l "$out5")"
cmp -s "${img[0]}" <(head -c 1048576 /dev/zero) || fail "restore of $empty is not all zeros"
pass "$empty: the short read is a warning on its task; the restore is 1 MiB of zeros"

# ---- vCenter unreachable for 4 s while a backup's tasks run: ridden out, no snapshot left ----
for n in 1 2 3 4; do kill "$(cat "$SITE/run/agent-$n.pid")"; done
wait_until 10 "agents gone" has_count online 0
jid=$("$VBAK" backup "$vm" --json | jq .job)
wait_until 30 "the snapshot of job $jid" bash -c \
  "\"$VBAK\" job show $jid --json | jq -e '.vm_details[0].snapshot_state == \"created\" and .progress.queued > 0' >/dev/null"
kill -USR1 "$RELAY_PID" # the network blinks: the agents meet it when they fetch the tasks
"$VBAK" lab up "$SITE" >/dev/null
wait_until 120 "job $jid ends" bash -c "[[ \$(\"$VBAK\" job show $jid --json | jq -r .state) != running ]]"
js=$("$VBAK" job show "$jid" --json)
[[ $(jq -r .state <<<"$js") == succeeded ]] || fail "a 4 s outage failed the job: $(jq -c '{error, tasks: [.tasks[] | {state, attempts, failures, error}]}' <<<"$js")"
(($(jq '[.tasks[].failures] | add' <<<"$js") >= 1)) || fail "no task met the outage: $js"
grep -q "outage for 4000 ms" "$TEST_DIR/relay.log" || fail "the relay made no outage"
wait_until 30 "the snapshot of job $jid removed" bash -c \
  "[[ \$(\"$VBAK\" job show $jid --json | jq -r '.vm_details[0].snapshot_state') == removed ]]"
"$VB_TESTS_BIN/vbak-vsphere-probe" --url "$(fx .url)" --user "$(fx .user)" --password-file "$PW" \
  --ca-file "$(fx .ca_file)" inventory | jq -e --arg vm "$vm" '.vms[] | select(.name == $vm) | .snapshots | length == 0' >/dev/null ||
  fail "a snapshot stayed on $vm after the outage"
n=$(restore_and_compare "$(jq -c '{vm_details}' <<<"$js")" "$vm")
pass "vCenter unreachable for 4 s mid-backup: $(jq '[.tasks[].failures] | add' <<<"$js") failed tries ridden out, no snapshot left, $n disks restored byte for byte"
