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
# vbak-vm1, and into vsan-vm, refused while it has a snapshot, done with --delete-snapshots.
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
  jq -r '.datastores[] | "datastore.\(.name).dir = \"\(.dir)\"", "datastore.\(.name).type = \"\(.type)\""' "$FIX.json"
  jq -r '.vms[] | .id as $id | .disks[] | "vm.\($id).disk = \"\(.path)\""' "$FIX.json"
} >"$VDDK/fakevddk-site.conf"
echo "vddk_libdir = \"$VDDK\"" >>"$SITE/agent-1.conf"

"$VBAK" lab up "$SITE" >/dev/null
wait_until 10 "two agents online" has_count online 2
[[ $(agents_json | jq -c '[.[] | {name, vddk}] | sort_by(.name)') == '[{"name":"agent-1","vddk":true},{"name":"agent-2","vddk":false}]' ]] ||
  fail "agents do not say which has VDDK: $(agents_json | jq -c '[.[] | {name, vddk}]')"
pass "agent-1 registers with VDDK, agent-2 without"

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

# ---- agent-2 alone: the file service, as before ----
"$VBAK" lab up "$SITE" >/dev/null
wait_until 10 "agent-2 back" state_is agent-2 online
stop_agent 1
job2=$(backup_json "$vm")
[[ $(jq -r .state <<<"$job2") == succeeded ]] || fail "backup of $vm on agent-2: $job2"
n=$(tasks_agree "$(jq .id <<<"$job2")" "$ex" agent-2 vsfile)
[[ $(restore_and_compare "$job2" "$vm") == 2 ]] || fail "restore of $vm: not 2 disks"
pass "agent-2: $n tasks over the file service (as explain says, and why), restored byte for byte"
