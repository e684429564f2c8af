#!/usr/bin/env bash
# Backups of a vSphere VM through VixDiskLib: a coordinator with provider = "vsphere" against the
# vCenter simulator fixture gives every disk vddk:// routes (vCenter, vm=moref=, the snapshot's
# moref, the datastore path, the server's thumbprint, a password file) beside the file-service
# route. agent-1 has vddk_libdir (the fake library, with a site file written from the simulator's
# inventory: credentials, VMs and their disks, datastore directories and types; the proxy sees no
# LUN and mounts no datastore); agent-2 has none. `vbak explain` and the tasks agree: agent-1
# reads over NBDSSL through VixDiskLib (the mode VDDK reported), agent-2 over the file service
# and says why; both restore byte for byte to the simulator's flat files. agent-1 also restores
# into the VMs through VixDiskLib writes (the fake writes the simulator's flat files): into
# vbak-vm1, into vsan-vm (refused while it has a snapshot, done with --delete-snapshots), and
# into new VMs (CreateVM_Task; without --datastore away from a datastore without room; one held
# in the simulator while the coordinator keeps answering and another restore runs). Then
# agent-1 gets proxy_vm: HotAdd as explain says, a HotAdd refused at open falls back to NBDSSL,
# special-character names open, port 902 unreachable gives VDDK error 14009 and the file
# service; PrepareForAccess/EndAccess stay balanced after success, failure, cancel and a
# coordinator SIGKILL + restart. The simulator starts once for the whole script.
source "$(dirname "$0")/lib.sh"

FAKE=$VB_TESTS_BIN/fakevddk/lib64/libvixDiskLib.so
[[ -f $FAKE ]] || fail "$FAKE is missing"
source "$(dirname "$0")/vsphere_site.sh"
vsphere_site 2 "$(fx .url)"

# A VDDK install for agent-1: the fake library and what the vCenter knows, from the simulator.
VDDK=$TEST_DIR/vddk
mkdir -p "$VDDK/lib64"
ln -s "$FAKE" "$VDDK/lib64/libvixDiskLib.so"
{
  echo "user = \"$(fx .user)\""
  echo "password_file = \"$PW\""
  echo "vbak.fakeServerThumbprint = \"$(fx .thumbprint)\""
  echo 'proxy_luns = ""'
  echo 'proxy_datastores = ""'
  jq -r '.datastores[] | "datastore.\(.name).dir = \"\(.dir)\"", "datastore.\(.name).type = \"\(.type)\"",
    (select(.lun) | "datastore.\(.name).lun = \"\(.lun)\"")' "$FIX.json"
  echo "inventory = \"$FIX.vddk\"" # the VMs' disks, kept up to date by the simulator
} >"$VDDK/fakevddk-site.conf"
echo "vddk_libdir = \"$VDDK\"" >>"$SITE/agent-1.conf"

"$VBAK" lab up "$SITE" >/dev/null
wait_until 10 "two agents online" has_count online 2
[[ $(agents_json | jq -c '[.[] | {name, vddk}] | sort_by(.name)') == '[{"name":"agent-1","vddk":true},{"name":"agent-2","vddk":false}]' ]] ||
  fail "agents do not say which has VDDK: $(agents_json | jq -c '[.[] | {name, vddk}]')"
# agent-1 says the version its VixDiskLib logs at InitEx (the fake: 7.0.3), which supports the
# simulator's vSphere 6.5 (VDDK 7.0: 6.5 through 8.0): no warning
[[ $(agents_json | jq -c '[.[] | {name, vddk_version, warning}] | sort_by(.name)') == '[{"name":"agent-1","vddk_version":"7.0.3","warning":null},{"name":"agent-2","vddk_version":null,"warning":null}]' ]] ||
  fail "agents' VDDK versions: $(agents_json | jq -c '[.[] | {name, vddk_version, warning}]')"
pass "agent-1 registers with VDDK 7.0.3 (no warning against vSphere 6.5), agent-2 without"

vm=vbak-vm1
ex=$("$VBAK" explain "$vm" --json)
jq -e '[.[] | select(.agent == "agent-1")] | length == 2 and all(.[]; .chosen == "nbdssl" and .route == "nbdssl"
  and (.why | test("NFC over TLS")))' <<<"$ex" >/dev/null ||
  fail "explain for agent-1 (VDDK, no LUN, no datastore): $ex"
no_vddk="agent agent-2 has no vddk_libdir: VixDiskLib modes unavailable; the datastore file service is used"
jq -e --arg s "$no_vddk" '[.[] | select(.agent == "agent-2")] | length == 2 and all(.[]; .chosen == "nbdssl"
  and .route == "vsfile" and (.why | contains($s))
  and ((.refused[] | select(.mode == "nbd") | .reason) == $s))' <<<"$ex" >/dev/null ||
  fail "explain for agent-2 (no vddk_libdir) does not say why it uses the file service: $ex"
pass "explain: agent-1 nbdssl through VixDiskLib, agent-2 the file service ($no_vddk)"

# stop_agent N / start_agents: run a backup on one agent at a time
stop_agent() {
  local pid
  pid=$(cat "$(conf_value "$SITE/agent-$1.conf" pid_file)")
  kill "$pid"
  wait_until 10 "agent-$1 lost" state_is "agent-$1" lost
}



# ---- agent-1 alone: VixDiskLib, NBDSSL ----
stop_agent 2
job=$(backup_json "$vm")
[[ $(jq -r .state <<<"$job") == succeeded ]] || fail "backup of $vm on agent-1: $job"
n=$(tasks_agree "$(jq .id <<<"$job")" "$ex" agent-1 nbdssl)
grep -q 'vddk: opened file="\[vmfs-01\] vbak-vm1/vbak-vm1.vmdk" asked=nbdssl got=nbdssl' "$SITE/log/agent-1.log" ||
  fail "agent-1 did not open through VixDiskLib in mode nbdssl: $(grep vddk "$SITE/log/agent-1.log" | tail -5)"
[[ $(restore_and_compare "$job" "$vm") == 2 ]] || fail "restore of $vm: not 2 disks"
pass "agent-1: $n tasks over nbdssl through VixDiskLib (as explain says), restored byte for byte"

# ---- restores into the VM through VixDiskLib writes (agent-1) ----
# The VM's disks change after the backup (data overwritten, a hole filled): the restore writes
# every chunk, holes included, back into the simulator's flat files.
flats() { jq -r --arg vm "$1" '.vms[] | select(.name == $vm) | .disks[] | [.flat_file, .sha256] | @tsv' "$FIX.json"; }
# scribble VM: 64 KiB blocks 2 (data) and 3 (a hole) of each of its disks overwritten
scribble() {
  local flat sha
  while IFS=$'\t' read -r flat sha; do
    head -c 131072 /dev/urandom | dd of="$flat" bs=64K seek=2 conv=notrunc status=none
    [[ $(sha256sum <"$flat" | cut -d' ' -f1) != "$sha" ]] || fail "$flat did not change"
  done < <(flats "$1")
}
# same_as_backup VM: each disk's flat file has the digest the fixture published (= the backup)
same_as_backup() {
  local flat sha
  while IFS=$'\t' read -r flat sha; do
    [[ $(sha256sum <"$flat" | cut -d' ' -f1) == "$sha" ]] || fail "$flat differs from the backup after the restore into $1"
  done < <(flats "$1")
}
scribble "$vm"
exr=$("$VBAK" explain "$vm" --restore --json)
jq -e '[.[] | select(.agent == "agent-1")] | length == 2 and all(.[]; .chosen == "nbdssl" and .route == "nbdssl")' \
  <<<"$exr" >/dev/null || fail "explain --restore for agent-1 (VDDK): $exr"
r=$("$VBAK" restore "$(rp_of "$job" "$vm")" --to-vm --wait --json) || fail "restore --to-vm of $vm: $r"
[[ $(jq -r .state <<<"$r") == succeeded ]] || fail "restore --to-vm of $vm: $r"
n=$(tasks_agree "$(jq .id <<<"$r")" "$exr" agent-1 nbdssl)
same_as_backup "$vm"
grep -q 'vddk: opened file="\[vmfs-01\] vbak-vm1/vbak-vm1.vmdk" asked=nbdssl got=nbdssl' "$SITE/log/agent-1.log" ||
  fail "agent-1 did not write through VixDiskLib"
pass "restore into $vm: $n tasks wrote over nbdssl through VixDiskLib, the VM's flat files equal the backup"

# A VM with a snapshot (vsan-vm's "pre-existing"): refused, then done with --delete-snapshots,
# which removes the snapshot through vCenter first (a second restore needs no flag).
vs=vsan-vm
[[ $(fx ".vms[] | select(.name == \"$vs\") | .snapshots | join(\",\")") == pre-existing ]] || fail "$vs has no snapshot"
jobv=$(backup_json "$vs")
[[ $(jq -r .state <<<"$jobv") == succeeded ]] || fail "backup of $vs: $jobv"
scribble "$vs"
if out=$("$VBAK" restore "$(rp_of "$jobv" "$vs")" --to-vm 2>&1); then fail "restore into $vs with a snapshot was allowed: $out"; fi
grep -q "VM $vs has 1 snapshot(s) (first: pre-existing); restoring into a VM with snapshots is refused.*--delete-snapshots" <<<"$out" ||
  fail "the refusal does not say why and what to do: $out"
r=$("$VBAK" restore "$(rp_of "$jobv" "$vs")" --to-vm --delete-snapshots --wait --json) || fail "restore --delete-snapshots: $r"
[[ $(jq -r .state <<<"$r") == succeeded ]] || fail "restore --delete-snapshots into $vs: $r"
same_as_backup "$vs"
r=$("$VBAK" restore "$(rp_of "$jobv" "$vs")" --to-vm --wait --json) || fail "a restore into $vs after its snapshot was deleted: $r"
[[ $(jq -r .state <<<"$r") == succeeded ]] || fail "a restore into $vs after its snapshot was deleted: $r"
pass "restore into $vs: refused while it has a snapshot, done with --delete-snapshots (snapshot removed in vCenter), byte-identical"

# ---- restore to a new VM: CreateVM_Task with empty disks of the same capacities, then the
# restore into it through VixDiskLib ----
copy="vbak-vm1 copy #1"
r=$("$VBAK" restore "$(rp_of "$job" "$vm")" --new-vm "$copy" --datastore nfs-01 --wait --json) ||
  fail "restore --new-vm '$copy': $r"
[[ $(jq -r .state <<<"$r") == succeeded ]] || fail "restore --new-vm '$copy': $r"
exn=$("$VBAK" explain "$copy" --restore --json)
n=$(tasks_agree "$(jq .id <<<"$r")" "$exn" agent-1 nbdssl)
[[ $(jq -c '[.[] | select(.agent == "agent-1") | .disk] | sort' <<<"$exn") == '["2000","2001"]' ]] ||
  fail "the new VM's disks are not 2000 and 2001: $exn"
# copy_matches COPY SOURCE DATASTORE: the simulator's VM COPY has SOURCE's disks, in order, on
# DATASTORE, each flat file of the same capacity and content as SOURCE's was at its backup
copy_matches() {
  local moref dir i f
  moref=$(sed -n "s/^vm\.\(vm-[0-9]*\)\.name = \"$1\"\$/\1/p" "$FIX.vddk")
  [[ -n $moref ]] || fail "the simulator has no VM '$1': $(cat "$FIX.vddk")"
  dir=$(fx ".datastores[] | select(.name == \"$3\") | .dir")
  mapfile -t disks < <(sed -n "s/^vm\.$moref\.disk = \"\[$3\] \(.*\)\.vmdk\"\$/\1/p" "$FIX.vddk")
  mapfile -t want < <(jq -r --arg vm "$2" '.vms[] | select(.name == $vm) | .disks[] | [.capacity, .sha256] | @tsv' "$FIX.json")
  [[ ${#disks[@]} == "${#want[@]}" ]] || fail "'$1' does not have ${#want[@]} disks on $3: $(grep "$moref" "$FIX.vddk")"
  for i in "${!want[@]}"; do
    f="$dir/${disks[$i]}-flat.vmdk"
    [[ $(stat -c %s "$f") == "${want[$i]%%$'\t'*}" ]] || fail "$f is not of the source disk's capacity"
    [[ $(sha256sum <"$f" | cut -d' ' -f1) == "${want[$i]#*$'\t'}" ]] || fail "disk $i of '$1' ($f) differs from the backup"
  done
}
copy_matches "$copy" "$vm" nfs-01
if out=$("$VBAK" restore "$(rp_of "$job" "$vm")" --new-vm "$copy" 2>&1); then fail "a second '$copy' was made: $out"; fi
grep -q "a VM or FCD named $copy exists already" <<<"$out" || fail "a second '$copy': $out"
pass "restore --new-vm '$copy' on nfs-01: CreateVM_Task made disks 2000 and 2001 of the same capacities, $n tasks wrote them through VixDiskLib, byte-identical"

# A slow vCenter: while CreateVM_Task waits in the simulator ($FIX.hold), the restore is accepted
# at once and says "preparing"; the coordinator keeps answering, its agents stay online and
# another restore runs to its end. Let through, the new VM is made and restored byte-identical.
copy2="vbak-vm1 copy #2"
touch "$FIX.hold"
r=$("$VBAK" restore "$(rp_of "$job" "$vm")" --new-vm "$copy2" --datastore nfs-01 --json) ||
  fail "restore --new-vm '$copy2' was not accepted while vCenter is slow: $r"
held=$(jq -r .job <<<"$r")
create_held() { grep -qx CreateVM_Task "$FIX.hold.held" 2>/dev/null; }
wait_until 20 "CreateVM_Task held in the simulator" create_held
phase_of() { "$VBAK" job show "$1" --json | jq -r '.progress.phase'; }
[[ $(phase_of "$held") == preparing ]] || fail "job $held is not preparing: $("$VBAK" job show "$held" --json)"
"$VBAK" status >/dev/null || fail "vbak status does not answer while a restore is being prepared"
seen() { agents_json | jq -r '.[] | select(.name == "agent-1") | .last_seen_ms'; }
seen0=$(seen)
out=$TEST_DIR/while-held
r=$("$VBAK" restore "$(rp_of "$job" "$vm")" --to-dir "$out" --wait --json) || fail "a restore while another is held: $r"
[[ $(jq -r .state <<<"$r") == succeeded ]] || fail "a restore while another is held: $r"
n=0
while IFS=$'\t' read -r key sha; do
  [[ $(sha256sum <"$out/$vm-$key.raw" | cut -d' ' -f1) == "$sha" ]] || fail "$out/$vm-$key.raw differs from the backup"
  n=$((n + 1))
done < <(jq -r --arg vm "$vm" '.vms[] | select(.name == $vm) | .disks[] | [.key, .sha256] | @tsv' "$FIX.json")
heartbeat() { (($(seen) > seen0)); }
wait_until 20 "a heartbeat of agent-1 while a restore is being prepared" heartbeat
[[ $(phase_of "$held") == preparing ]] || fail "job $held is not preparing any more while CreateVM_Task is held"
rm -f "$FIX.hold"
held_done() { [[ $("$VBAK" job show "$held" --json | jq -r .state) != running ]]; }
wait_until 60 "job $held" held_done
[[ $("$VBAK" job show "$held" --json | jq -r .state) == succeeded ]] || fail "job $held: $("$VBAK" job show "$held" --json)"
copy_matches "$copy2" "$vm" nfs-01
pass "a held CreateVM_Task: the restore was accepted at once and preparing, status answered, agent-1's heartbeats went on, a restore of $n disks ran meanwhile; let through, '$copy2' is byte-identical"

# Without --datastore: the source's datastore, unless it lacks room (vvol-01 has 1 MiB free in
# the simulator, vvol-vm's disk is 2 MiB): then the datastore with the most free space, said so.
jobw=$(backup_json vvol-vm)
[[ $(jq -r .state <<<"$jobw") == succeeded ]] || fail "backup of vvol-vm: $jobw"
r=$("$VBAK" restore "$(rp_of "$jobw" vvol-vm)" --new-vm "vvol-vm copy" --wait --json 2>"$TEST_DIR/vvol.err") ||
  fail "restore --new-vm 'vvol-vm copy': $r $(cat "$TEST_DIR/vvol.err")"
[[ $(jq -r .state <<<"$r") == succeeded ]] || fail "restore --new-vm 'vvol-vm copy': $r"
to=$("$VBAK" explain "vvol-vm copy" --restore --json | jq -r '.[0].datastore')
[[ $to != vvol-01 && $to != null ]] || fail "'vvol-vm copy' is on $to"
grep -qF "vbak: note: datastore vvol-01 has 1048576 bytes free, less than the new VM's 2097152: the new VM is on $to, the datastore with the most free space (" "$TEST_DIR/vvol.err" ||
  fail "no note of the datastore chosen for 'vvol-vm copy' (on $to): $(cat "$TEST_DIR/vvol.err")"
copy_matches "vvol-vm copy" vvol-vm "$to"
pass "restore --new-vm without --datastore: vvol-01 lacks room, the copy went to $to (most free space) and the job says so, byte-identical"

# ---- agent-2 alone: the file service, as before ----
"$VBAK" lab up "$SITE" >/dev/null
wait_until 10 "agent-2 back" state_is agent-2 online
stop_agent 1
job2=$(backup_json "$vm")
[[ $(jq -r .state <<<"$job2") == succeeded ]] || fail "backup of $vm on agent-2: $job2"
n=$(tasks_agree "$(jq .id <<<"$job2")" "$ex" agent-2 vsfile)
[[ $(restore_and_compare "$job2" "$vm") == 2 ]] || fail "restore of $vm: not 2 disks"
pass "agent-2: $n tasks over the file service (as explain says, and why), restored byte for byte"

# ---- HotAdd: agent-1 runs in VM empty-flat (proxy_vm, its moref), on vbak-vm1's host, sitting on
# vmfs-01; the fake knows the same proxy VM and checks its host's mounts ----
proxy=$(fx '.vms[] | select(.name == "empty-flat") | .id')
[[ $(fx '.vms[] | select(.name == "empty-flat") | .host') == $(fx '.vms[] | select(.name == "vbak-vm1") | .host') ]] ||
  fail "empty-flat is not on vbak-vm1's host"
sed -i "s|^proxy_vm = .*|proxy_vm = \"$proxy\"|" "$SITE/agent-1.conf"
echo "proxy_vm = \"$proxy\"" >>"$VDDK/fakevddk-site.conf"
"$VBAK" lab up "$SITE" >/dev/null
wait_until 10 "agent-1 back" state_is agent-1 online
stop_agent 2
[[ $(agents_json | jq -r '.[] | select(.name == "agent-1") | .proxy_vm') == "$proxy" ]] ||
  fail "agent-1 does not say its proxy VM: $(agents_json | jq -c '.[] | select(.name == "agent-1")')"
exh=$("$VBAK" explain "$vm" --agent agent-1 --json)
jq -e 'length == 2 and all(.[]; .chosen == "hotadd" and .route == "hotadd")' <<<"$exh" >/dev/null ||
  fail "explain for agent-1 in a proxy VM on $vm's host: $exh"
jq -e 'all(.[]; .chosen != "hotadd" and ((.refused[] | select(.mode == "hotadd") | .reason) |
  test("needs a proxy on that vSAN datastore")))' <<<"$("$VBAK" explain vsan-vm --agent agent-1 --json)" >/dev/null ||
  fail "HotAdd of a vSAN disk from a proxy off that datastore was not refused"
jobh=$(backup_json "$vm")
[[ $(jq -r .state <<<"$jobh") == succeeded ]] || fail "backup of $vm over HotAdd: $jobh"
n=$(tasks_agree "$(jq .id <<<"$jobh")" "$exh" agent-1 hotadd)
[[ $(restore_and_compare "$jobh" "$vm") == 2 ]] || fail "restore of $vm: not 2 disks"
pass "agent-1 with proxy_vm $proxy: $n tasks over HotAdd through VixDiskLib (as explain says); vSAN refused; restored byte for byte"

# The proxy's host loses nfs-01 between the plan and the open: VDDK refuses HotAdd for that
# disk, the agent opens the next allowed mode (NBDSSL) and the task records both.
echo 'hotadd_unmounted = "nfs-01"' >"$VDDK/fakevddk-faults.conf"
jobf=$(backup_json "$vm" --full)
rm -f "$VDDK/fakevddk-faults.conf"
[[ $(jq -r .state <<<"$jobf") == succeeded ]] || fail "backup with nfs-01 unmounted: $jobf"
tasks=$("$VBAK" job show "$(jq .id <<<"$jobf")" --json | jq -c '[.tasks[] | select(.state == "done")]')
jq -e 'all(.[] | select(.disk == "2000"); .transport == "hotadd")' <<<"$tasks" >/dev/null ||
  fail "disk 2000 (vmfs-01) did not stay on HotAdd: $tasks"
jq -e '[.[] | select(.disk == "2001")] | length > 0 and all(.[]; .transport == "nbdssl"
  and (.reason | test("after: hotadd")) and (.reason | contains("does not mount datastore nfs-01")))' <<<"$tasks" >/dev/null ||
  fail "disk 2001 (nfs-01) did not fall back from HotAdd to NBDSSL with the reason: $tasks"
[[ $(restore_and_compare "$jobf" "$vm") == 2 ]] || fail "restore of $vm: not 2 disks"
pass "HotAdd refused at open (nfs-01 unmounted): disk 2001 fell back to NBDSSL and its tasks say why; restored byte for byte"

# ---- SAN: vmfs-01 is a VMFS volume on a SAN LUN (the extent vCenter reports); agent-1's proxy
# sees that LUN (agent.conf luns, and the fake's proxy_luns). SAN for disk 2000 (vmfs-01), never
# for 2001 (nfs-01: no LUN), as explain says and the tasks record; a restore into the VM (no
# snapshots) writes over SAN too. Then the LUN vanishes from the proxy between plan and open:
# VDDK refuses SAN, the disk falls back to HotAdd and its tasks say both. ----
lun=$(fx '.datastores[] | select(.name == "vmfs-01") | .lun')
[[ $lun == naa.* ]] || fail "vmfs-01 has no SAN LUN in the simulator: $(fx .datastores)"
sed -i '/^luns = /d' "$SITE/agent-1.conf"
echo "luns = \"$lun\"" >>"$SITE/agent-1.conf"
sed -i "s|^proxy_luns = .*|proxy_luns = \"$lun\"|" "$VDDK/fakevddk-site.conf"
stop_agent 1
"$VBAK" lab up "$SITE" >/dev/null
wait_until 10 "agent-1 back" state_is agent-1 online
stop_agent 2
[[ $(agents_json | jq -c '.[] | select(.name == "agent-1") | .luns') == "[\"$lun\"]" ]] ||
  fail "agent-1 does not say it sees $lun: $(agents_json | jq -c '.[] | select(.name == "agent-1")')"
exs=$("$VBAK" explain "$vm" --agent agent-1 --json)
jq -e --arg l "$lun" '(.[] | select(.disk == "2000") | .chosen == "san" and .route == "san" and (.why | contains($l)))
  and (.[] | select(.disk == "2001") | .chosen == "hotadd" and ((.refused[] | select(.mode == "san") | .reason) | test("NFS datastore nfs-01")))' \
  <<<"$exs" >/dev/null || fail "explain with $lun seen by agent-1: $exs"
for v in vsan-vm vvol-vm; do
  jq -e 'all(.[]; .chosen != "san" and ((.refused[] | select(.mode == "san") | .reason) | test("SAN is not supported on (vsan|VVOL)")))' \
    <<<"$("$VBAK" explain "$v" --agent agent-1 --json)" >/dev/null || fail "SAN not refused for $v"
done
jobs_=$(backup_json "$vm" --full)
[[ $(jq -r .state <<<"$jobs_") == succeeded ]] || fail "backup of $vm over SAN: $jobs_"
n=$(tasks_agree "$(jq .id <<<"$jobs_")" "$exs" agent-1)
[[ $("$VBAK" job show "$(jq .id <<<"$jobs_")" --json | jq -c '[.tasks[] | select(.state == "done") | {disk, transport}] | unique') == \
  '[{"disk":"2000","transport":"san"},{"disk":"2001","transport":"hotadd"}]' ]] || fail "SAN backup tasks: $("$VBAK" job show "$(jq .id <<<"$jobs_")" --json | jq -c .tasks)"
grep -q 'vddk: opened file="\[vmfs-01\] vbak-vm1/vbak-vm1.vmdk" asked=san got=san' "$SITE/log/agent-1.log" ||
  fail "agent-1 did not open disk 2000 through VixDiskLib in mode san"
[[ $(restore_and_compare "$jobs_" "$vm") == 2 ]] || fail "restore of $vm: not 2 disks"
scribble "$vm"
exsr=$("$VBAK" explain "$vm" --agent agent-1 --restore --json)
r=$("$VBAK" restore "$(rp_of "$jobs_" "$vm")" --to-vm --wait --json) || fail "restore --to-vm over SAN: $r"
[[ $(jq -r .state <<<"$r") == succeeded ]] || fail "restore --to-vm over SAN: $r"
nr=$(tasks_agree "$(jq .id <<<"$r")" "$exsr" agent-1)
jq -e '.[] | select(.disk == "2000") | .chosen == "san"' <<<"$exsr" >/dev/null || fail "restore of disk 2000 is not over SAN: $exsr"
same_as_backup "$vm"
pass "SAN: agent-1 sees $lun of vmfs-01: $n backup tasks (disk 2000 san, 2001 hotadd) and $nr restore tasks as explain says; vsan/VVOL refused; byte-identical"

echo "luns_lost = \"$lun\"" >"$VDDK/fakevddk-faults.conf"
jobl=$(backup_json "$vm" --full)
rm -f "$VDDK/fakevddk-faults.conf"
[[ $(jq -r .state <<<"$jobl") == succeeded ]] || fail "backup with $lun lost: $jobl"
tasks=$("$VBAK" job show "$(jq .id <<<"$jobl")" --json | jq -c '[.tasks[] | select(.state == "done" and .disk == "2000")]')
jq -e --arg l "$lun" 'length > 0 and all(.[]; .transport == "hotadd" and (.reason | test("after: san"))
  and (.reason | contains("the proxy does not see the LUN " + $l + " of datastore vmfs-01")))' <<<"$tasks" >/dev/null ||
  fail "disk 2000 did not fall back from SAN to HotAdd with the reason: $tasks"
[[ $(restore_and_compare "$jobl" "$vm") == 2 ]] || fail "restore of $vm: not 2 disks"
pass "the LUN vanished from the proxy: VDDK refused SAN, disk 2000 fell back to HotAdd and its tasks say both; restored byte for byte"

# ---- A First Class Disk (the fixture's, on vmfs-01): listed through the VStorageObjectManager,
# snapshotted with VStorageObjectCreateSnapshot_Task, read through VixDiskLib's vStorageObject
# connection spec (its id, its datastore's moref, the snapshot's id as ssId: the fake refuses
# an id, datastore or snapshot vCenter does not have), over SAN as explain says (vmfs-01's LUN);
# the snapshot deleted after the job; restored byte-identical to a directory and into the FCD ----
fname=$(fx '.fcds[0].name')
fid=$(fx '.fcds[0].id')
fflat=$(fx '.fcds[0].flat_file')
fsha=$(fx '.fcds[0].sha256')
exf=$("$VBAK" explain "$fname" --agent agent-1 --json)
jq -e --arg id "$fid" 'length == 1 and .[0].disk == $id and .[0].chosen == "san" and .[0].route == "san"' <<<"$exf" >/dev/null ||
  fail "explain for FCD '$fname': $exf"
jfc=$(backup_json --fcd "$fname")
[[ $(jq -r .state <<<"$jfc") == succeeded ]] || fail "backup of FCD '$fname': $jfc"
tasks=$("$VBAK" job show "$(jq .id <<<"$jfc")" --json | jq -c '[.tasks[] | select(.state == "done")]')
jq -e --arg id "$fid" --arg why "$(jq -r '.[0].why' <<<"$exf")" 'length > 0 and all(.[]; .disk == $id and .agent == "agent-1"
  and .transport == "san" and .reason == $why)' <<<"$tasks" >/dev/null || fail "FCD tasks differ from explain: $tasks"
grep -qF "vddk: opened file=\"[vmfs-01] fcd/$fid.vmdk\" asked=san got=san" "$SITE/log/agent-1.log" ||
  fail "agent-1 did not open the FCD through VixDiskLib in mode san: $(grep vddk "$SITE/log/agent-1.log" | tail -3)"
grep -q "^fcd\.$fid\.snapshot = " "$FIX.vddk" && fail "the FCD's backup snapshot was left behind: $(grep "$fid" "$FIX.vddk")"
rpf=$(rp_of "$jfc" "$fname")
out=$TEST_DIR/restore-fcd
r=$("$VBAK" restore "$rpf" --to-dir "$out" --wait --json) || fail "restore of FCD '$fname': $r"
[[ $(jq -r .state <<<"$r") == succeeded ]] || fail "restore of FCD '$fname': $r"
cmp -s "$out/$fname-$fid.raw" "$fflat" || fail "the FCD restored to $out differs from $fflat: $(ls "$out")"
head -c 131072 /dev/urandom | dd of="$fflat" bs=64K seek=1 conv=notrunc status=none
r=$("$VBAK" restore "$rpf" --to-vm --wait --json) || fail "restore into FCD '$fname': $r"
[[ $(jq -r .state <<<"$r") == succeeded ]] || fail "restore into FCD '$fname': $r"
[[ $(sha256sum <"$fflat" | cut -d' ' -f1) == "$fsha" ]] || fail "the FCD's flat file differs from its backup after the restore into it"
pass "FCD '$fname': backed up over SAN through the vStorageObject spec (as explain says), its snapshot deleted, restored byte-identical to a directory and into the FCD"

# An incremental of the FCD: 64 KiB at 2 MiB change (the fixture's FCD change tracking:
# RetrieveSnapshotDetails, VstorageObjectVCenterQueryChangedDiskAreas since the last backup's
# change ID); the job reads only that block and its restore point restores the new content.
head -c 65536 /dev/urandom | dd of="$fflat" bs=64K seek=32 conv=notrunc status=none
jfi=$(backup_json --fcd "$fname")
[[ $(jq -r .state <<<"$jfi") == succeeded ]] || fail "incremental backup of FCD '$fname': $jfi"
[[ $(jq -r '.vm_details[0].mode' <<<"$jfi") == incremental ]] || fail "the second FCD backup is not incremental: $(jq -c .vm_details <<<"$jfi")"
read_bytes=$("$VBAK" job show "$(jq .id <<<"$jfi")" --json | jq '[.tasks[] | select(.state == "done" and .kind == "backup") | .bytes] | add')
# (whole chunks of the repository, 1 MiB, around the changed 64 KiB; a full read is 4 MiB)
[[ $read_bytes -ge 65536 && $read_bytes -le 1048576 ]] || fail "the FCD incremental read $read_bytes bytes for a 64 KiB change"
out=$TEST_DIR/restore-fcd-incr
r=$("$VBAK" restore "$(rp_of "$jfi" "$fname")" --to-dir "$out" --wait --json) || fail "restore of the FCD incremental: $r"
cmp -s "$out/$fname-$fid.raw" "$fflat" || fail "the FCD incremental restored differs from $fflat"
pass "FCD '$fname' incremental: 64 KiB changed, $read_bytes bytes read, restored byte-identical"

# Names with special characters open through VixDiskLib as vCenter spells them (the datastore
# path is given to VixDiskLib_Open as it is, UTF-8, '%', '#', '&', spaces and "%2f" kept).
for sv in "$(fx '.vms[] | select(.name | test("%2f")) | .name')" "$(fx '.vms[] | select(.name | test("^sp")) | .name')"; do
  js=$(backup_json "$sv")
  [[ $(jq -r .state <<<"$js") == succeeded ]] || fail "backup of '$sv' through VixDiskLib: $js"
  [[ $("$VBAK" job show "$(jq .id <<<"$js")" --json | jq -r '[.tasks[] | select(.state == "done") | .transport] | unique | join(",")') == nbdssl ]] ||
    fail "'$sv' was not read through VixDiskLib over NBDSSL: $("$VBAK" job show "$(jq .id <<<"$js")" --json | jq -c '.tasks')"
  [[ $(restore_and_compare "$js" "$sv") == 1 ]] || fail "restore of '$sv': not 1 disk"
done
pass "VMs named with %2f, #, %, &, spaces and non-ASCII open through VixDiskLib; restored byte for byte"

# Port 902 (NFC) of the hosts unreachable from the proxy: VixDiskLib's network modes fail with
# VDDK error 14009, each naming the VM's host and port 902; the agent then reads the flat file
# over the datastore file service (allowed for a backup), and the tasks say why.
echo 'nfc_unreachable = "1"' >"$VDDK/fakevddk-faults.conf"
jobn=$(backup_json vsan-vm --full)
rm -f "$VDDK/fakevddk-faults.conf"
[[ $(jq -r .state <<<"$jobn") == succeeded ]] || fail "backup of vsan-vm with port 902 unreachable: $jobn"
vs_host=$(fx '.vms[] | select(.name == "vsan-vm") | .host')
tasks=$("$VBAK" job show "$(jq .id <<<"$jobn")" --json | jq -c '[.tasks[] | select(.state == "done")]')
jq -e --arg h "$vs_host" 'length > 0 and all(.[]; .transport == "vsfile" and (.reason | test("after: nbdssl"))
  and (.reason | contains("cannot reach " + $h + " port 902 (NFC) in mode nbdssl"))
  and (.reason | contains("VIX error 14009")) and (.reason | contains("open TCP port 902")))' <<<"$tasks" >/dev/null ||
  fail "tasks with port 902 unreachable: $tasks"
[[ $(restore_and_compare "$jobn" vsan-vm) == 1 ]] || fail "restore of vsan-vm: not 1 disk"
pass "port 902 unreachable: VDDK error 14009 names $vs_host:902, the tasks fell back to the datastore file service; restored byte for byte"

# ---- PrepareForAccess / EndAccess (vCenter's DisableMethods / EnableMethods of
# RelocateVM_Task, counted by the simulator): balanced after every job above, after a job that
# failed, after one cancelled while it waits for an agent, and after a coordinator SIGKILLed
# mid-job ----
# access_balanced: in the simulator's log, every VM has as many "enable" as "disable" lines
access_balanced() {
  [[ -s $FIX.access ]] || return 1
  [[ -z $(sort "$FIX.access" | uniq -c | awk '{print $3, $2, $1}' | sort | awk '
    { n[$1 " " $2] = $3; vms[$1] = 1 }
    END { for (v in vms) if (n[v " disable"] != n[v " enable"]) print v }') ]]
}
access_balanced || fail "PrepareForAccess/EndAccess unbalanced after the jobs: $(sort "$FIX.access" | uniq -c)"
n=$(grep -c '^disable ' "$FIX.access")
pass "PrepareForAccess/EndAccess balanced after $n successful backups: $(sort "$FIX.access" | uniq -c | awk '{print $3 ":" $2 "=" $1}' | paste -sd' ')"

# a backup that fails (every VixDiskLib read fails, on every attempt) ends its access too
echo 'read_fails = "1"' >"$VDDK/fakevddk-faults.conf"
jfail=$(backup_json vvol-vm --full) || true
rm -f "$VDDK/fakevddk-faults.conf"
[[ $(jq -r .state <<<"$jfail") == failed ]] || fail "a backup whose reads all fail did not fail: $jfail"
jq -r .error <<<"$jfail" | grep -q "VixDiskLib_Read" || fail "the failed backup does not say what failed: $jfail"
wait_until 20 "EndAccess after the failed backup" access_balanced
pass "a backup that failed (VixDiskLib_Read refused on every attempt) ends its access"

stop_agent 1
vm1=$(fx '.vms[] | select(.name == "vbak-vm1") | .id')
before=$(grep -c "^disable $vm1\$" "$FIX.access")
jc=$("$VBAK" backup "$vm" --json | jq .job)
prepared() { [[ $(grep -c "^disable $vm1\$" "$FIX.access") -gt $before ]]; }
wait_until 20 "PrepareForAccess of $vm" prepared
"$VBAK" job cancel "$jc" >/dev/null
wait_until 20 "EndAccess after the cancel" access_balanced
pass "a backup cancelled while it waits for an agent ends its access"

before=$(grep -c "^disable $vm1\$" "$FIX.access")
jk=$("$VBAK" backup "$vm" --json | jq .job)
wait_until 20 "PrepareForAccess of $vm" prepared
kill -9 "$(cat "$(conf_value "$CONF" pid_file)")"
access_balanced && fail "the access ended although the coordinator was killed"
"$VBAK" lab up "$SITE" >/dev/null
wait_until 30 "EndAccess after the coordinator's restart" access_balanced
[[ $("$VBAK" job show "$jk" --json | jq -r .state) == failed ]] || fail "job $jk: $("$VBAK" job show "$jk" --json | jq -c '{state, error}')"
pass "a coordinator SIGKILLed mid-backup: after its restart the interrupted job failed and its VM's access was ended"

# ---- VDDK x vCenter versions: agent-1's VixDiskLib now says 8.0.1, which supports vSphere 6.7
# through 9.0 (N-2 to N+1), not the simulator's 6.5: `vbak agents` and `vbak explain` warn,
# naming both versions; agent-2 (no VDDK) gets no warning ----
stop_agent 1
echo 'vbak.fakeVersion = "8.0.1"' >>"$VDDK/fakevddk-site.conf"
"$VBAK" lab up "$SITE" >/dev/null
wait_until 10 "agent-1 back" state_is agent-1 online
wait_until 10 "agent-2 online" state_is agent-2 online
api=$(fx .api_version)
want="agent agent-1: VDDK 8.0.1 does not support vSphere $api: VDDK 8.0 supports vSphere 6.7 through 9.0 (N-2 to N+1); install a VDDK release for vSphere 6.5 on this proxy"
[[ $api == 6.5 ]] || fail "the simulator reports API $api, not 6.5"
[[ $(agents_json | jq -r '.[] | select(.name == "agent-1") | .warning') == "$want" ]] ||
  fail "vbak agents --json does not warn: $(agents_json | jq -c '.[] | {name, vddk_version, warning}')"
[[ $(agents_json | jq -r '.[] | select(.name == "agent-2") | .warning') == null ]] || fail "agent-2 (no VDDK) warned"
"$VBAK" agents | grep -qxF "warning: $want" || fail "vbak agents does not print the warning: $("$VBAK" agents)"
exv=$("$VBAK" explain "$vm" --json)
jq -e --arg w "$want" '([.[] | select(.agent == "agent-1")] | length == 2 and all(.[]; .warning == $w))
  and all(.[] | select(.agent == "agent-2"); .warning == null)' <<<"$exv" >/dev/null || fail "explain does not warn: $exv"
"$VBAK" explain "$vm" --agent agent-1 | grep -qF "  warning   $want" || fail "explain's table has no warning: $("$VBAK" explain "$vm" --agent agent-1)"
pass "VDDK 8.0.1 against vSphere $api: vbak agents and vbak explain warn ($want)"

