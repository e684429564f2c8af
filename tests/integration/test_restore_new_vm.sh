#!/usr/bin/env bash
# Restore to a new VM: a restore point's disks land in a VM the restore creates (same keys and
# capacities, byte-identical to the content at the backup), a taken name is refused, and the new
# VM backs up like any other. Orphans: a disk file no VM or FCD references is listed, nothing
# else is, and --delete removes exactly it.
source "$(dirname "$0")/lib.sh"

"$VBAK" lab create "$SITE" --vms 3 --disk-size 16M --heartbeat-ms 200 >/dev/null
"$VBAK" lab up "$SITE" >/dev/null
wait_until 10 "four agents online" has_count online 4

vm_json() { site_json | jq -c --arg vm "$1" '.vms[] | select(.name == $vm)'; }

# back up a VM with two disks (the second not a multiple of 1 MiB), then let it drift
save_content full
job=$(backup_json vm-vmfs-01)
[[ $(jq -r .state <<<"$job") == succeeded ]] || fail "backup: $job"
rp=$(rp_of "$job" vm-vmfs-01)
"$VBAK" lab mutate "$SITE" vm-vmfs-01 --percent 20 >/dev/null
pass "backed up vm-vmfs-01 (restore point $rp), then changed it"

# restore it to a new VM
job=$("$VBAK" restore "$rp" --new-vm copy-1 --wait --json) || fail "restore --new-vm: $job"
[[ $(jq -r .state <<<"$job") == succeeded ]] || fail "restore --new-vm did not succeed: $job"
src=$(vm_json vm-vmfs-01)
new=$(vm_json copy-1)
[[ -n $new ]] || fail "copy-1 is not in the site"
[[ $(jq -c '[.disks[] | {key, capacity}]' <<<"$new") == "$(jq -c '[.disks[] | {key, capacity}]' <<<"$src")" ]] \
  || fail "copy-1's disks $(jq -c '[.disks[] | {key, capacity}]' <<<"$new") differ from the source's"
[[ $(jq -r '.disks[0].datastore' <<<"$new") == "$(jq -r '.disks[0].datastore' <<<"$src")" ]] \
  || fail "copy-1 is not on the source's datastore"
host=$(jq -r .host <<<"$new")
site_json | jq -e --arg h "$host" --arg ds "$(jq -r '.disks[0].datastore' <<<"$new")" \
  '.datastores[] | select(.name == $ds) | .hosts | index($h) != null' >/dev/null \
  || fail "copy-1's host $host does not mount its datastore"
jq -e '[.disks[] | .nbd_uri, .nbds_uri, .file_uri, .change_id] | all(. != null)' <<<"$new" >/dev/null \
  || fail "copy-1's disks are not served or tracked: $new"
n=0
while IFS=$'\t' read -r key file; do
  cmp -s "$file" "$TEST_DIR/expect/full/vm-vmfs-01-$key.raw" \
    || fail "copy-1 disk $key differs from vm-vmfs-01's disk $key at the backup"
  n=$((n + 1))
done < <(jq -r '.disks[] | [.key, .file_uri] | @tsv' <<<"$new")
((n == 2)) || fail "copy-1 has $n disks"
pass "restore --new-vm copy-1: same keys and capacities, each disk byte-identical to the backup"

# the same name again: refused, nothing created
if out=$("$VBAK" restore "$rp" --new-vm copy-1 --wait 2>&1); then fail "a second copy-1 was allowed: $out"; fi
grep -q "copy-1 exists already" <<<"$out" || fail "the refusal does not say why: $out"
[[ $(site_json | jq '[.vms[] | select(.name == "copy-1")] | length') == 1 ]] || fail "copy-1 twice"
if out=$("$VBAK" restore "$rp" --new-vm vm-nfs-01 2>&1); then fail "a new VM over vm-nfs-01 was allowed"; fi
grep -q "vm-nfs-01 exists already" <<<"$out" || fail "the refusal does not say why: $out"
if out=$("$VBAK" restore "$rp" --new-vm copy-3 --datastore no-such-ds 2>&1); then fail "an unknown datastore was accepted"; fi
grep -q "no-such-ds" <<<"$out" || fail "the refusal does not name the datastore: $out"
[[ -z $(vm_json copy-3) ]] || fail "copy-3 was created anyway"
pass "a name that exists and an unknown datastore are refused with the reason"

# another datastore: a host that mounts it runs the new VM
job=$("$VBAK" restore "$rp" --new-vm copy-2 --datastore nfs-01 --wait --json) || fail "restore --datastore: $job"
[[ $(jq -r .state <<<"$job") == succeeded ]] || fail "restore --datastore: $job"
new2=$(vm_json copy-2)
[[ $(jq -r '[.disks[].datastore] | unique | join(",")' <<<"$new2") == nfs-01 ]] || fail "copy-2 not on nfs-01: $new2"
site_json | jq -e --arg h "$(jq -r .host <<<"$new2")" '.datastores[] | select(.name == "nfs-01") | .hosts | index($h) != null' \
  >/dev/null || fail "copy-2's host does not mount nfs-01"
n=0
while IFS=$'\t' read -r key file; do
  cmp -s "$file" "$TEST_DIR/expect/full/vm-vmfs-01-$key.raw" || fail "copy-2 disk $key differs"
  n=$((n + 1))
done < <(jq -r '.disks[] | [.key, .file_uri] | @tsv' <<<"$new2")
((n == 2)) || fail "copy-2 has $n disks, vm-vmfs-01 has 2"
pass "restore --new-vm copy-2 --datastore nfs-01"

# an encrypted FCD: restored as a plain disk holding its plaintext, and the user is told
job=$(backup_json --fcd fcd-enc-01)
[[ $(jq -r .state <<<"$job") == succeeded ]] || fail "backup of fcd-enc-01: $job"
rp_enc=$(rp_of "$job" fcd-enc-01)
job=$("$VBAK" restore "$rp_enc" --new-vm enc-copy --wait --json 2>"$TEST_DIR/enc.err") || fail "restore of the encrypted FCD: $job"
[[ $(jq -r .state <<<"$job") == succeeded ]] || fail "restore of the encrypted FCD: $job"
grep -q "encrypted.*plain disk" "$TEST_DIR/enc.err" || fail "no note about the encrypted disk: $(cat "$TEST_DIR/enc.err")"
enc=$(vm_json enc-copy)
[[ $(jq -r '.disks[0].encrypted' <<<"$enc") == false ]] || fail "enc-copy's disk is not plain"
cmp -s "$(jq -r '.disks[0].file_uri' <<<"$enc")" "$TEST_DIR/expect/full/fcd-enc-01-$(jq -r '.disks[0].key' <<<"$enc").raw" \
  || fail "enc-copy does not hold the FCD's plaintext"
pass "an encrypted FCD restores to a new VM as a plain disk with its plaintext (and says so)"

# the new VM backs up like any other, and its restore point restores byte-identical
save_content newvm
job=$(backup_json copy-1)
[[ $(jq -r .state <<<"$job") == succeeded ]] || fail "backup of copy-1: $job"
check_restore "$(rp_of "$job" copy-1)" newvm
"$VBAK" lab mutate "$SITE" copy-1 --percent 5 >/dev/null
job=$(backup_json copy-1)
[[ $(jq -r '.vm_details[0].mode' <<<"$job") == incremental ]] || fail "copy-1's second backup is not incremental: $job"
pass "a backup (full, then incremental) of the new VM works"

# ---- orphans
images() { find "$SITE"/disks "$SITE"/disks-luks "$SITE"/disks-clear -type f | sort; }
before=$(images)
[[ $("$VBAK" orphans --json | jq .count) == 0 ]] || fail "orphans on a clean site: $("$VBAK" orphans --json)"
pass "no orphan on a clean site (live disks, snapshot files, encrypted images all referenced)"

leftover="$SITE/disks/vm-vmfs-01--vm-vmfs-01 old copy"
cp --sparse=always "$(jq -r '.disks[0].file_uri' <<<"$src")" "$leftover"
out=$("$VBAK" orphans --json)
[[ $(jq -r '[.orphans[].path] | join("\n")' <<<"$out") == "$leftover" ]] || fail "orphans lists $(jq -c '[.orphans[].path]' <<<"$out")"
jq -e --arg p "$leftover" '.orphans[0] | .datastore == "san-vmfs-01" and .length == 16777216 and .size > 0
  and .removed == false' <<<"$out" >/dev/null || fail "orphan details: $out"
"$VBAK" orphans | grep -F "$leftover" | grep -q "san-vmfs-01" || fail "text output: $("$VBAK" orphans)"
[[ -f $leftover ]] || fail "listing removed the file"
pass "a copied disk image is listed, alone, with its size and datastore"

# a snapshot file whose snapshot is gone is a leftover too
stale="$SITE/disks/$(basename "$(jq -r '.disks[1].file_uri' <<<"$src")")@snapshot-999"
cp --sparse=always "$(jq -r '.disks[1].file_uri' <<<"$src")" "$stale"
[[ $("$VBAK" orphans --json | jq '.count') == 2 ]] || fail "the stale snapshot file is not listed"
out=$("$VBAK" orphans --delete --json)
[[ $(jq '[.orphans[] | select(.removed)] | length' <<<"$out") == 2 ]] || fail "--delete: $out"
[[ ! -e $leftover && ! -e $stale ]] || fail "--delete left a file"
[[ $(images) == "$before" ]] || fail "--delete touched other files: $(diff <(echo "$before") <(images))"
[[ $("$VBAK" orphans --json | jq .count) == 0 ]] || fail "orphans after --delete"
pass "--delete removes exactly the orphans; every image of every VM, FCD and snapshot stays"

job=$(backup_json vm-vmfs-01 copy-1 vm-nfs-01)
[[ $(jq -r .state <<<"$job") == succeeded ]] || fail "backup after --delete: $job"
pass "backups still work after the orphans were removed"
