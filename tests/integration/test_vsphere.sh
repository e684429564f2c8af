#!/usr/bin/env bash
# The vSphere provider against the vCenter simulator: inventory, login, TLS, snapshots, changed
# block tracking, the datastore file service and the parallel reader.
. "$(dirname "$0")/vsphere_lib.sh"

start_fixture sim

# ---- inventory: what vbak reads equals what the simulator holds ----
probe sim inventory >"$WORK/inv.json" 2>"$WORK/inv.err" || fail "inventory: $(cat "$WORK/inv.err")"
norm_ours='{
  datastores: [.datastores[] | {name, type, url, hosts: (.hosts | sort), lun: (.lun // "")}] | sort_by(.name),
  hosts: (.hosts | sort),
  vms: [.vms[] | select(.fcd | not) | {name, id, host, snapshots,
        disks: [.disks[] | {key, path, datastore, capacity,
                            parent: (.parent // ""), change_id: (.change_id // "")}]}] | sort_by(.name)
}'
norm_sim='{
  datastores: [.datastores[] | {name, type, url, hosts, lun: (.lun // "")}],
  hosts,
  vms: [.vms[] | {name, id, host, snapshots,
        disks: [.disks[] | {key, path, datastore, capacity,
                            parent: (.parent // ""), change_id: (.change_id // "")}]}]
}'
jq -S "$norm_ours" "$WORK/inv.json" >"$WORK/ours.json"
jq -S "$norm_sim" "$WORK/sim.json" >"$WORK/theirs.json"
if diff -u "$WORK/theirs.json" "$WORK/ours.json"; then
    ok "inventory matches the simulator's ($(jq '.vms | length' "$WORK/ours.json") VMs)"
else
    fail "inventory differs from the simulator's"
fi

# ---- VixDiskLib routes: every disk, every backup mode, each name given back byte for byte ----
# (an inline password gives agents no way to log in: no route)
jq -e 'all(.vms[].disks[]; .vddk == null)' "$WORK/inv.json" >/dev/null ||
    fail "a VixDiskLib route without a password file for agents"
(umask 077 && info sim .password >"$WORK/vc.password")
"$PROBE" --url "$(info sim .url)" --user "$(info sim .user)" --password-file "$WORK/vc.password" \
    --ca-file "$(info sim .ca_file)" inventory >"$WORK/inv-pwfile.json" 2>"$WORK/inv-pwfile.err" ||
    fail "inventory with a password file: $(cat "$WORK/inv-pwfile.err")"
host=$(info sim .url | sed 's|^https://||; s|:[0-9]*$||')
want=$(jq -c --arg u "$(info sim .user)" --arg t "$(info sim .thumbprint)" --arg pw "$WORK/vc.password" \
    --arg h "$host" '[.vms[] | .id as $id | .disks[] | {modes: ["san", "hotadd", "nbdssl", "nbd"],
    host: $h, user: $u, file: .path, vm: "moref=\($id)", thumbprint: $t, password_file: $pw}] | sort' "$WORK/sim.json")
got=$(jq -c '[.vms[] | select(.fcd | not) | .disks[].vddk | del(.uri)] | sort' "$WORK/inv-pwfile.json")
[ "$got" = "$want" ] || fail "VixDiskLib routes: got $got, want $want"
if grep -qF "$(info sim .password)" "$WORK/inv-pwfile.json"; then fail "a route holds the password"; fi
ok "each disk has a VixDiskLib route per mode: vCenter, vm=moref, [ds] path, thumbprint, password file ($(jq '[.vms[].disks[]] | length' "$WORK/inv-pwfile.json") disks)"
# First Class Disks (VStorageObjectManager): one object of one disk each, keyed by its id, with a
# VixDiskLib route of the vStorageObject kind (id, datastore moref; no vmxSpec) and no file
# service route
want=$(jq -c '[.fcds[] | {name, id, key: .id, path, datastore, capacity, vddk: {fcd: .id, datastore: .datastore_ref, vm: null, file: .path}}] | sort' "$WORK/sim.json")
got=$(jq -c '[.vms[] | select(.fcd) | {name, id, key: .disks[0].key, path: .disks[0].path, datastore: .disks[0].datastore,
    capacity: .disks[0].capacity, vddk: (.disks[0].vddk | {fcd, datastore, vm, file})}] | sort' "$WORK/inv-pwfile.json")
[ "$got" = "$want" ] && [ "$(jq '.fcds | length' "$WORK/sim.json")" -ge 1 ] &&
    ok "First Class Disks listed with vStorageObject routes: $got" || fail "FCDs: got $got, want $want"
types=$(jq -r '[.datastores[].type] | sort | join(",")' "$WORK/inv.json")
[ "$types" = "NFS,NFS,OTHER,VMFS,VVOL,vsan" ] && ok "datastore types $types" ||
    fail "datastore types: $types"
# the SAN LUN of a VMFS datastore (its extent's canonical name); no other type has one
luns=$(jq -c '[.datastores[] | select(.lun != null) | {name, lun}]' "$WORK/inv.json")
[ "$luns" = "[{\"name\":\"vmfs-01\",\"lun\":\"$(info sim '.datastores[] | select(.name == "vmfs-01") | .lun')\"}]" ] &&
    ok "VMFS datastore on a SAN LUN: $luns" || fail "datastore LUNs: $luns"
[ "$(jq -r '.vms[] | select(.name == "linked-clone") | .linked_clone' "$WORK/inv.json")" = true ] &&
    ok "linked clone recognised" || fail "linked clone not flagged"
[ "$(jq -r '.vms[] | select(.name == "vbak-vm1") | .linked_clone' "$WORK/inv.json")" = false ] ||
    fail "a full VM is flagged as a linked clone"

# ---- login and TLS ----
out=$("$PROBE" --url "$(info sim .url)" --user "$(info sim .user)" --password 'not the password' \
    --ca-file "$(info sim .ca_file)" about 2>&1) && fail "a bad password was accepted"
echo "$out" | grep -q "wrong user name or password" && echo "$out" | grep -q InvalidLogin &&
    ok "bad password: $out" || fail "bad password message: $out"

wrong=00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF
real=$(info sim .thumbprint)
out=$("$PROBE" --url "$(info sim .url)" --user "$(info sim .user)" --password "$(info sim .password)" \
    --thumbprint "$wrong" about 2>&1) && fail "a wrong thumbprint was accepted"
echo "$out" | grep -q "expected SHA-256 $wrong" && echo "$out" | grep -q "server presented $real" &&
    ok "wrong thumbprint refused with both thumbprints" || fail "wrong thumbprint message: $out"
probe sim --thumbprint about >/dev/null 2>&1 && ok "pinned thumbprint accepted" ||
    fail "the right thumbprint was refused"
probe sim about >/dev/null 2>&1 && ok "CA file accepted" || fail "the CA file was refused"
out=$("$PROBE" --url "$(info sim .url)" --user "$(info sim .user)" --password "$(info sim .password)" \
    about 2>&1) && fail "an unknown self-signed certificate was accepted without CA or pin"
echo "$out" | grep -q "TLS verification failed" && echo "$out" | grep -q "$real" &&
    ok "no CA, no pin: refused" || fail "no-trust message: $out"

out=$(probe sim relogin 2>&1 | tail -n 1)
[ "$(echo "$out" | jq -r .logins 2>/dev/null)" = 3 ] && ok "re-login after the session was dropped" ||
    fail "relogin: $out"

# ---- snapshots ----
snap=$(probe sim snapshot-create vbak-vm1 vbak-job-17 2>"$WORK/snap.err") ||
    fail "snapshot create: $(cat "$WORK/snap.err")"
probe sim inventory 2>/dev/null | jq -e '.vms[] | select(.name == "vbak-vm1") |
    .snapshots == ["vbak-job-17"]' >/dev/null && ok "snapshot $snap created" ||
    fail "snapshot not in the inventory"
for k in $(info sim '.vms[] | select(.name == "vbak-vm1") | .disks[].key'); do
    want=$(info sim ".vms[] | select(.name == \"vbak-vm1\") | .disks[] | select(.key == \"$k\") | .path")
    got=$(probe sim snapshot-disk "$snap" "$k" 2>/dev/null)
    [ "$got" = "$want" ] && ok "disk $k at the snapshot: $got" || fail "snapshot disk $k: '$got', expected '$want'"
done
out=$(probe sim snapshot-disk "$snap" 4242 2>&1) && fail "a missing disk at the snapshot"
echo "$out" | grep -q "has no disk with key 4242" || fail "snapshot-disk message: $out"
probe sim snapshot-remove vbak-vm1 "$snap" 2>"$WORK/snap.err" || fail "remove: $(cat "$WORK/snap.err")"
probe sim inventory 2>/dev/null | jq -e '.vms[] | select(.name == "vbak-vm1") |
    .snapshots == []' >/dev/null && ok "snapshot removed" || fail "snapshot still there"
out=$(probe sim snapshot-remove vbak-vm1 "$snap" 2>&1) && fail "removing twice succeeded"
echo "$out" | grep -q "has no snapshot" && ok "second remove: not found" || fail "second remove: $out"
out=$(probe sim snapshot-create "no such vm" x 2>&1) && fail "snapshot of a missing VM"
echo "$out" | grep -q "no VM named 'no such vm'" || fail "missing VM message: $out"
# by name, on the VM with a pre-existing snapshot
probe sim snapshot-create vsan-vm second >/dev/null 2>&1 || fail "second snapshot"
probe sim inventory 2>/dev/null | jq -e '.vms[] | select(.name == "vsan-vm") |
    .snapshots == ["pre-existing", "second"]' >/dev/null && ok "snapshot chain oldest first" ||
    fail "snapshot chain order"
probe sim snapshot-remove vsan-vm second 2>/dev/null || fail "remove by name"

# ---- changed block tracking: the simulator has none ----
key=$(info sim '.vms[] | select(.name == "vbak-vm1") | .disks[0].key')
out=$(probe sim changed-areas vbak-vm1 "$key" 2>&1) && fail "changed areas answered on the simulator"
echo "$out" | grep -q "changed block tracking is unavailable for disk $key of VM vbak-vm1" && echo "$out" | grep -q "(unsupported)" &&
    ok "QueryChangedDiskAreas MethodNotFound: full backup" || fail "CBT message: $out"
key2=$(info sim '.vms[] | select(.name == "vbak-vm1") | .disks[1].key')
out=$(probe sim changed-areas vbak-vm1 "$key2" 2>&1) && fail "changed areas of a disk without tracking"
# vbak-vm1 has tracking on: its disk without a change ID has not started yet, tracking is not off
echo "$out" | grep -q "changed block tracking is on for VM vbak-vm1 but disk $key2 has no change ID yet: the first backup is full" &&
    ! echo "$out" | grep -q "tracking is off" && ! echo "$out" | grep -q "full backup (" &&
    ok "disk without a change ID yet: the first backup is full" || fail "no-change-ID disk message: $out"

# ---- datastore file service ----
n=0
while read -r vm; do
    while IFS=$'\t' read -r fp ff sha size; do
        n=$((n + 1))
        got=$(probe sim file-size "$fp" 2>/dev/null)
        [ "$got" = "$size" ] || fail "$fp: size $got, expected $size"
        [ "$size" -gt 0 ] || continue # the empty flat file: its size is all there is to read
        probe sim file-get "$fp" 0 "$size" "$WORK/whole.$n" >/dev/null 2>"$WORK/get.err" ||
            fail "get $fp: $(cat "$WORK/get.err")"
        [ "$(sha256sum <"$WORK/whole.$n" | cut -d' ' -f1)" = "$sha" ] || fail "$fp: digest differs"
        off=$((size / 3 + 17)); len=$((size / 4))
        probe sim file-get "$fp" "$off" "$len" "$WORK/part.$n" >/dev/null 2>&1 || fail "range $fp"
        cmp -s "$WORK/part.$n" <(tail -c +$((off + 1)) "$ff" | head -c "$len") || fail "$fp: range differs"
        # past the end: a short read
        probe sim file-get "$fp" $((size - 10)) 100 "$WORK/tail.$n" >/dev/null 2>&1 || fail "tail $fp"
        [ "$(stat -c %s "$WORK/tail.$n")" = 10 ] || fail "$fp: read past the end"
    done < <(info sim ".vms[] | select(.name == \"$vm\") | .disks[] | [.flat_path, .flat_file, .sha256, .flat_bytes] | @tsv")
done < <(info sim '.vms[].name')
want=$(info sim '[.vms[].disks[]] | length')
[ "$n" -gt 0 ] && [ "$n" = "$want" ] || fail "read $n flat files, the simulator has $want"
[ "$FAILED" = 0 ] && ok "$n flat files read byte for byte, whole and by range"

sp=$(info sim '.vms[] | select(.name | startswith("sp")) | .disks[0].flat_path')
spf=$(info sim '.vms[] | select(.name | startswith("sp")) | .disks[0].flat_file')
case "$sp" in *" "*) ;; *) fail "no space in $sp" ;; esac
case "$sp" in *"%"*) ;; *) fail "no % in $sp" ;; esac
case "$sp" in *"#"*) ;; *) fail "no # in $sp" ;; esac
case "$sp" in *"&"*) ;; *) fail "no & in $sp" ;; esac
case "$sp" in *"ç"*) ok "special name: $sp" ;; *) fail "no non-ASCII letter in $sp" ;; esac
out=$(probe sim file-get "$sp" 4096 65536 "$WORK/sp" 2>/dev/null)
cmp -s "$WORK/sp" <(tail -c +4097 "$spf" | head -c 65536) && [ "$(echo "$out" | jq -r .encoding)" = single ] &&
    ok "special-character name read with single encoding" || fail "special name read: $out"
out=$(probe sim --encoding double file-get "$sp" 4096 65536 "$WORK/sp2" 2>/dev/null)
cmp -s "$WORK/sp2" <(tail -c +4097 "$spf" | head -c 65536) && [ "$(echo "$out" | jq -r .encoding)" = single ] &&
    ok "started with double encoding, got 404, learned single" || fail "adaptive from double: $out"
out=$(probe sim file-get "[nfs-01] spécial vm #1/no such 100%.vmdk" 0 10 "$WORK/none" 2>&1) &&
    fail "a missing file was read"
echo "$out" | grep -q "tried single and double encoding" && ok "missing file: not found after both encodings" ||
    fail "missing file message: $out"

# A datastore of the second datacenter (inside a folder, "Remote site/DC2 (remote)"): the
# dcPath comes from the inventory.
rp=$(info sim '.vms[] | select(.name == "remote-vm") | .disks[0].flat_path')
rf=$(info sim '.vms[] | select(.name == "remote-vm") | .disks[0].flat_file')
[ "$(info sim '.datastores[] | select(.name == "nfs-remote") | .datacenter')" = "Remote site/DC2 (remote)" ] ||
    fail "the fixture's second datacenter is not where the test expects it"
probe sim file-get "$rp" 0 2097152 "$WORK/remote" >/dev/null 2>&1 && cmp -s "$WORK/remote" "$rf" &&
    ok "file in the second datacenter read (dcPath found)" || fail "second datacenter read"
out=$(probe sim --datacenter DC0 file-get "$rp" 0 10 "$WORK/remote2" 2>&1) &&
    fail "a datastore was found in the wrong datacenter"
echo "$out" | grep -q "not found" || fail "wrong datacenter message: $out"
out=$(probe sim file-get "[no such ds] x/y.vmdk" 0 10 "$WORK/none2" 2>&1) && fail "unknown datastore read"
echo "$out" | grep -q "no datastore named 'no such ds'" && ok "unknown datastore named" ||
    fail "unknown datastore message: $out"

# PUT, then read back through the service and from the datastore directory
head -c 300000 /dev/urandom >"$WORK/up"
probe sim file-put "[nfs-01] spécial vm #1/upload 50% #2.bin" "$WORK/up" 2>"$WORK/put.err" ||
    fail "put: $(cat "$WORK/put.err")"
cmp -s "$WORK/up" "$(dirname "$spf")/upload 50% #2.bin" && ok "PUT with a special name lands under that name" ||
    fail "PUT content or name differs"

# ---- the parallel reader agents use ----
fp=$(info sim '.vms[] | select(.name == "vbak-vm1") | .disks[0].flat_path')
ff=$(info sim '.vms[] | select(.name == "vbak-vm1") | .disks[0].flat_file')
probe sim read-extents "$fp" 4 "$WORK/ext" 0:1048576 2097152:4194304 7340032:1048576 >/dev/null 2>"$WORK/ext.err" ||
    fail "read-extents: $(cat "$WORK/ext.err")"
cmp -s "$WORK/ext" <(head -c 1048576 "$ff"; tail -c +2097153 "$ff" | head -c 4194304; tail -c +7340033 "$ff") &&
    ok "parallel extent read equals the flat file" || fail "parallel read differs"
probe sim read-extents "$sp" 3 "$WORK/ext2" 0:3149824 >/dev/null 2>&1 && cmp -s "$WORK/ext2" "$spf" &&
    ok "parallel read of the special-character disk" || fail "parallel read of the special disk"
out=$(probe sim read-extents "$fp" 2 "$WORK/ext3" 8388000:1000 2>&1) && fail "extent past the end accepted"
echo "$out" | grep -q "ends past the file" || fail "past-the-end message: $out"

# ---- CreateVM_Task (restore to a new VM): empty disks of the given capacities, keys 2000.. ----
probe sim create-vm "new vm #1" vsanDatastore - 2097152 1048576 2>"$WORK/cvm.err" ||
    fail "create-vm: $(cat "$WORK/cvm.err")"
probe sim inventory 2>/dev/null | jq -e '.vms[] | select(.name == "new vm #1") |
    [.disks[] | {key, datastore, capacity}] == [{"key": "2000", "datastore": "vsanDatastore", "capacity": 2097152},
    {"key": "2001", "datastore": "vsanDatastore", "capacity": 1048576}]' >/dev/null &&
    ok "CreateVM_Task made 'new vm #1' with disks 2000 and 2001 on vsanDatastore" ||
    fail "the new VM's disks: $(probe sim inventory 2>/dev/null | jq -c '.vms[] | select(.name == "new vm #1")')"
out=$(probe sim create-vm "new vm #1" vsanDatastore - 1048576 2>&1) && fail "a second VM of that name was made"
echo "$out" | grep -q "a VM named new vm #1 exists already" || fail "existing name message: $out"
out=$(probe sim create-vm "new vm #2" "no such ds" - 1048576 2>&1) && fail "a VM on a missing datastore"
echo "$out" | grep -q "no datastore named 'no such ds'" || fail "missing datastore message: $out"
out=$(probe sim create-vm "new vm #2" vmfs-01 esx-remote 1048576 2>&1) && fail "a VM on a host without the datastore"
echo "$out" | grep -q "host esx-remote does not mount datastore vmfs-01" || fail "host message: $out"
out=$(probe sim create-vm "new vm #2" vmfs-01 - $(printf '1048576 %.0s' {1..16}) 2>&1) && fail "16 disks on one controller"
echo "$out" | grep -q "at most 15, not 16" && ok "create-vm refusals name the name, datastore, host or disk count" ||
    fail "16 disks message: $out"

# ---- an FCD whose backing file is gone: RetrieveVStorageObject faults; the inventory goes on
# without it and says so (a datastore or FCD vCenter cannot describe costs only itself) ----
fdir=$(info sim '.datastores[] | select(.name == "vmfs-01") | .dir')
rm -f "$fdir/fcd/$(info sim '.fcds[0].id').vmdk"
n=$(probe sim inventory 2>"$WORK/fcd-gone.err" | jq '[.vms[] | select(.fcd)] | length')
[ "$n" = 0 ] && [ "$(probe sim inventory 2>/dev/null | jq '[.vms[] | select(.fcd | not)] | length')" -gt 5 ] &&
    grep -q "fcd-skipped fcd=$(info sim '.fcds[0].id') fault=NotFound" "$WORK/fcd-gone.err" &&
    ok "an FCD without its backing file is skipped with a warning; the VMs are listed" ||
    fail "inventory with a broken FCD: $n FCDs, $(cat "$WORK/fcd-gone.err")"

# ---- only faults about the datastore or FCD itself are skipped: a refusal (NoPermission) fails
# the inventory with the fault named, rather than leaving FCDs out without a word ----
echo "RetrieveVStorageObject NoPermission" >"$WORK/sim/inject-faults"
out=$(probe sim inventory 2>&1) && fail "the inventory went on past NoPermission on an FCD"
echo "$out" | grep -q "First Class Disks on datastore .*NoPermission" &&
    ok "NoPermission on an FCD fails the inventory and names the fault" || fail "NoPermission: $out"
echo "ListVStorageObject InvalidDatastore" >"$WORK/sim/inject-faults"
probe sim inventory >/dev/null 2>"$WORK/fcd-ds.err" &&
    grep -q "fcd-skipped datastore=.* fault=InvalidDatastore" "$WORK/fcd-ds.err" &&
    ok "a datastore that cannot hold FCDs (InvalidDatastore) is skipped with a warning" ||
    fail "InvalidDatastore: $(cat "$WORK/fcd-ds.err")"
rm -f "$WORK/sim/inject-faults"

finish
