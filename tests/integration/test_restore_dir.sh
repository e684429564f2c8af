#!/usr/bin/env bash
# Restore to a directory: VM names with '%', '%41', '#', '?', spaces, non-ASCII and vCenter's
# "%2f" restore byte-identical into DIR/<vm>-<key>.raw and touch no other file; an all-zero disk
# gets its full-length image; images are 0600 and made directories 0700 whatever the umask; a
# disk that reads short is a warning on its task; a corrupt chunk past the first task window is
# named by its absolute disk offset; --to-dir naming a file is refused before any job exists.
source "$(dirname "$0")/lib.sh"

"$VBAK" lab create "$SITE" --vms 3 --proxies 2 --disk-size 4M --heartbeat-ms 200 >/dev/null
echo 'task_bytes = "1048576"' >>"$SITE/coordinator.conf" # 1 MiB windows: 4 tasks per disk
# names as a vCenter user may give them ('/' shows as "%2f" in vSphere's names)
name1='ab%41cd #x?y'
name2='db #2 50% ça%2fzé'
jq --arg a "$name1" --arg b "$name2" '(.vms[] | select(.name == "vm-nfs-01") | .name) |= $a
  | (.vms[] | select(.name == "vm-vsan-01") | .name) |= $b' "$SITE/site.json" >"$TEST_DIR/site.json"
mv "$TEST_DIR/site.json" "$SITE/site.json"

disk_file() { site_json | jq -r --arg vm "$1" --arg k "$2" '(.vms + .fcds)[] | select(.name == $vm)
  | (.disks // [.])[] | select(.key == $k) | .file_uri'; }
# vm-vmfs-01: disk 2000 all holes; disk 2001 zeros but for one random 256 KiB chunk at 2.25 MiB
# (its third 1 MiB task window; 262144 inside it)
for k in 2000 2001; do
  f=$(disk_file vm-vmfs-01 $k)
  size=$(stat -c %s "$f")
  truncate -s 0 "$f" && truncate -s "$size" "$f"
done
dd if=/dev/urandom of="$(disk_file vm-vmfs-01 2001)" bs=256K seek=9 count=1 conv=notrunc status=none
# fcd-01: its file holds 0 bytes of its 4 MiB (a datastore returning bytes=0)
fcd_file=$(site_json | jq -r '.fcds[] | select(.name == "fcd-01") | .file_uri')
truncate -s 0 "$fcd_file"

umask 000 # the daemons inherit it: what they create for a restore must still be private
"$VBAK" lab up "$SITE" >/dev/null
umask 022
wait_until 10 "two agents online" has_count online 2

save_content full
touch "$TEST_DIR/before-backup"
job0=$(backup_json vm-vmfs-01)
[[ $(jq -r .state <<<"$job0") == succeeded ]] || fail "backup of vm-vmfs-01: $job0"
# its one chunk is the only chunk of the only pack that backup wrote (the pack starts with it)
chunk=$(find "$SITE/repo/packs" -type f -newer "$TEST_DIR/before-backup")
[[ $(wc -l <<<"$chunk") == 1 ]] || fail "expected one pack from vm-vmfs-01, found: $chunk"
job=$(backup_json "$name1" "$name2" --fcd fcd-01)
[[ $(jq -r .state <<<"$job") == succeeded ]] || fail "backup: $job"
pass "backed up VMs named '$name1' and '$name2', an all-zero VM and a short FCD"

# ---- every name round-trips: the image lands in DIR/<vm>-<key>.raw, byte-identical
out="$TEST_DIR/out"
mkdir -p "$out"
decoy="$out/abAcd #x?y-2000.raw" # where a decoded name would land
echo "not a disk image" >"$decoy"
for vm in "$name1" "$name2"; do
  rp=$(rp_of "$job" "$vm")
  r=$("$VBAK" restore "$rp" --to-dir "$out" --wait --json) || fail "restore of $vm: $r"
  [[ $(jq -r .state <<<"$r") == succeeded ]] || fail "restore of $vm: $r"
  while read -r key; do
    img="$out/$vm-$key.raw"
    [[ -f $img ]] || fail "no image $img for $vm disk $key: $(ls "$out")"
    cmp -s "$img" "$TEST_DIR/expect/full/$vm-$key.raw" || fail "$img differs from $vm disk $key"
  done < <(site_json | jq -r --arg vm "$vm" '.vms[] | select(.name == $vm) | .disks[].key')
done
[[ $(cat "$decoy") == "not a disk image" ]] || fail "the restore overwrote $decoy"
[[ $(ls "$out" | wc -l) == 5 ]] || fail "the restores wrote other files: $(ls "$out")"
pass "'$name1' and '$name2' restore byte-identical into <vm>-<key>.raw, nothing else touched"

# ---- a VM made with a '?' in its name (so in its image file's name): backed up through the file
# route at its snapshot (no fallback to the network), restored byte-identical
name3='q?x=1 #%41'
rp=$(rp_of "$job" "$name1")
r=$("$VBAK" restore "$rp" --new-vm "$name3" --datastore san-vmfs-01 --wait --json) || fail "restore --new-vm '$name3': $r"
save_content newvm
j3=$(backup_json "$name3")
[[ $(jq -r .state <<<"$j3") == succeeded ]] || fail "backup of '$name3': $j3"
"$VBAK" job show "$(jq -r .id <<<"$j3")" --json | jq -e '[.tasks[] | .transport] | all(. == "san" or . == "hotadd")' \
  >/dev/null || fail "'$name3' was not read through its file: $("$VBAK" job show "$(jq -r .id <<<"$j3")" --json | jq -c '[.tasks[] | .reason]')"
r=$("$VBAK" restore "$(rp_of "$j3" "$name3")" --to-dir "$out" --wait --json) || fail "restore of '$name3': $r"
cmp -s "$out/$name3-2000.raw" "$TEST_DIR/expect/newvm/$name3-2000.raw" || fail "'$name3' differs after its restore"
pass "a VM named '$name3' is read through its file at the snapshot and restores byte-identical"

# ---- an all-zero disk: an image of full length reading zeros; new directories 0700, images 0600
rp=$(rp_of "$job0" vm-vmfs-01)
nested="$TEST_DIR/new/parents/out"
r=$("$VBAK" restore "$rp" --to-dir "$nested" --wait --json) || fail "restore into missing parents: $r"
[[ $(jq -r .state <<<"$r") == succeeded ]] || fail "restore of vm-vmfs-01: $r"
img="$nested/vm-vmfs-01-2000.raw"
[[ -f $img ]] || fail "the all-zero disk has no image: $(ls "$nested")"
[[ $(stat -c %s "$img") == $(stat -c %s "$TEST_DIR/expect/full/vm-vmfs-01-2000.raw") ]] \
  || fail "the all-zero image is $(stat -c %s "$img") bytes long"
cmp -s "$img" "$TEST_DIR/expect/full/vm-vmfs-01-2000.raw" || fail "the all-zero image is not zeros"
cmp -s "$nested/vm-vmfs-01-2001.raw" "$TEST_DIR/expect/full/vm-vmfs-01-2001.raw" || fail "disk 2001 differs"
pass "an all-zero disk restores to an image of full length, all zeros"
for d in "$TEST_DIR/new" "$TEST_DIR/new/parents" "$nested"; do
  [[ $(stat -c %a "$d") == 700 ]] || fail "$d was made $(stat -c %a "$d")"
done
for f in "$nested"/*.raw "$out/$name1-2000.raw"; do
  [[ $(stat -c %a "$f") == 600 ]] || fail "$f was made $(stat -c %a "$f")"
done
pass "missing parents made, directories 0700 and images 0600 under umask 000"

# ---- a disk that read short is a warning on its task
fjob=$(jq -r .id <<<"$job")
"$VBAK" job show "$fjob" --json | jq -e '[.tasks[].reason // ""] | any(test("warning: .*fewer than its capacity"))' \
  >/dev/null || fail "no warning for the short disk: $("$VBAK" job show "$fjob" --json | jq -c '[.tasks[] | .reason]')"
shown=$("$VBAK" job show "$fjob")
grep -q "warning: disk fcd-01 / fcd-01 opened with 0 bytes, fewer than its capacity of 4194304" <<<"$shown" \
  || fail "job show does not show the warning: $shown"
pass "a disk whose file holds fewer bytes than its capacity is a warning on its task"

# ---- a corrupt chunk in the third window: the error names the absolute disk offset
flip_byte "$chunk" 40
out2="$TEST_DIR/out2"
if r=$("$VBAK" restore "$rp" --to-dir "$out2" --wait --json); then fail "a corrupt chunk restored: $r"; fi
err=$(jq -r .error <<<"$r")
grep -q "disk 2001 offset 2359296" <<<"$err" || fail "the error does not name disk 2001 offset 2359296: $err"
grep -q "offset 262144" <<<"$err" && fail "the error names the offset inside the task: $err"
pass "a corrupt chunk is named by its disk and absolute offset"

# ---- --to-dir naming a file: refused before a job exists
jobs_before=$("$VBAK" jobs --json | jq length)
touch "$TEST_DIR/a-file"
rc=0
msg=$("$VBAK" restore "$rp" --to-dir "$TEST_DIR/a-file" --wait 2>&1) || rc=$?
[[ $rc == 1 ]] || fail "--to-dir naming a file exited $rc: $msg"
grep -q "a-file is not a directory" <<<"$msg" || fail "the refusal does not say why: $msg"
[[ $("$VBAK" jobs --json | jq length) == "$jobs_before" ]] || fail "a job was made for --to-dir naming a file"
pass "--to-dir naming a file is refused at once (exit 1), no job made"

# ---- tables stay aligned with non-ASCII names: every row's CREATED column starts at one column
cols=$("$VBAK" prune --keep-last 1 --dry-run | grep -E '^  [0-9]+ ' |
  sed -E 's/^(.*)[0-9]{4}-[0-9]{2}-[0-9]{2}T.*$/\1/' | while IFS= read -r head; do
    printf '%s' "$head" | LC_ALL=C.UTF-8 wc -m
  done | sort -u)
[[ $(wc -l <<<"$cols") == 1 && -n $cols ]] || fail "prune's rows are not aligned (columns: $cols): $("$VBAK" prune --keep-last 1 --dry-run)"
"$VBAK" prune --keep-last 1 --dry-run | grep -q "$name2" || fail "prune does not list '$name2'"
pass "prune's table stays aligned with non-ASCII names"
