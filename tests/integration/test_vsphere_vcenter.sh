#!/usr/bin/env bash
# The vSphere provider against the simulator with two vCenter behaviours emulated in front of it
# (fixture -paging -cbt): RetrievePropertiesEx pages with ContinueRetrievePropertiesEx tokens,
# and QueryChangedDiskAreas answering a span of the disk at a time.
. "$(dirname "$0")/vsphere_lib.sh"

start_fixture vc -paging -cbt

norm='{
  datastores: [.datastores[] | {name, type, url, hosts: (.hosts | sort)}] | sort_by(.name),
  hosts: (.hosts | sort),
  vms: [.vms[] | select(.fcd | not) | {name, id, host, snapshots,
        disks: [.disks[] | {key, path, datastore, capacity,
                            parent: (.parent // ""), change_id: (.change_id // "")}]}] | sort_by(.name)
}'
jq -S "$norm" "$WORK/vc.json" >"$WORK/sim.norm"
for size in 1 2 7 100; do
    probe vc --debug --page-size "$size" inventory >"$WORK/inv.$size" 2>"$WORK/inv.$size.err" ||
        fail "inventory, page size $size: $(cat "$WORK/inv.$size.err")"
    jq -S "$norm" "$WORK/inv.$size" >"$WORK/inv.$size.norm"
    if diff -u "$WORK/sim.norm" "$WORK/inv.$size.norm" >/dev/null; then
        pages=$(sed -n 's/.*retrieve pages=\([0-9]*\).*/\1/p' "$WORK/inv.$size.err" | head -n 1)
        ok "page size $size: inventory equal (${pages:-1} pages)"
    else
        fail "page size $size: inventory differs"
        diff -u "$WORK/sim.norm" "$WORK/inv.$size.norm" | head -n 20 >&2
    fi
done
grep -q "retrieve pages=" "$WORK/inv.1.err" || fail "page size 1 did not page"

# ---- changed areas: all allocated blocks ("*"), then nothing since the current change ID ----
vm=vbak-vm1
key=$(info vc ".vms[] | select(.name == \"$vm\") | .disks[0].key")
cid=$(info vc ".vms[] | select(.name == \"$vm\") | .disks[0].change_id")
cap=$(info vc ".vms[] | select(.name == \"$vm\") | .disks[0].capacity")
snap=$(probe vc snapshot-create "$vm" vbak-cbt 2>/dev/null) || fail "snapshot"
out=$(probe vc --debug changed-areas "$vm" "$key" "$snap" '*' 2>"$WORK/cbt.err") || fail "changed areas: $(cat "$WORK/cbt.err")"
calls=$(grep -c "QueryChangedDiskAreas disk [0-9]* of VM $vm from=" "$WORK/cbt.err")
[ "$calls" = $((cap / 2097152)) ] || fail "expected $((cap / 2097152)) QueryChangedDiskAreas calls, saw $calls"
# The fixture's content: every fourth 64 KiB block is zero.
expected=$(jq -cn --argjson cap "$cap" '[range(0; $cap / 262144) | [. * 262144, 196608]]')
[ "$(echo "$out" | jq -c .extents)" = "$expected" ] &&
    ok "changed areas '*': $(echo "$out" | jq '.extents | length') extents over $calls answers of 2 MiB" ||
    fail "changed areas '*': $out"
[ "$(echo "$out" | jq -r .change_id)" = "$cid" ] && ok "change ID at the snapshot: $cid" ||
    fail "change id: $out"
out=$(probe vc changed-areas "$vm" "$key" "$snap" "$cid" 2>/dev/null)
[ "$(echo "$out" | jq -c .extents)" = "[]" ] && ok "nothing changed since the current change ID" ||
    fail "since current: $out"
out=$(probe vc changed-areas "$vm" "$key" "$snap" "52 00 00 00 00 00 00 00-00 00 00 00 00 00 00 00/1" 2>&1) &&
    fail "an unknown change ID was accepted"
# one sentence that names the disk and the VM and says why, the server's fault after it
echo "$out" | grep -q "of disk $key of VM $vm is not known to the server (change tracking was reset?)" &&
    ! echo "$out" | grep -q "full backup (" &&
    echo "$out" | grep -q "(not found)" && ok "unknown change ID: said in one sentence" || fail "unknown change ID: $out"
out=$(probe vc changed-areas "$vm" 99999 "$snap" '*' 2>&1) && fail "a missing disk key was accepted"
echo "$out" | grep -q "no disk with key 99999" || fail "missing disk: $out"
probe vc snapshot-remove "$vm" "$snap" 2>/dev/null || fail "snapshot remove"

finish
