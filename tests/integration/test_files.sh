#!/usr/bin/env bash
# File-level restore: the lab's guest VM (MBR + ext4, and GPT + NTFS) backed up full, a file changed in the guest,
# backed up again (incremental); `vbak files ls` at both restore points, `vbak files get` of the
# changed file (and others) from each, byte-identical to what the guest held at each backup, with
# modes and mtimes; `vbak mount` shows the same tree to ls/cmp while prune keeps the restore point
# (the session's serve lease), `vbak umount` ends it; a restore point whose file system is
# corrupted gives a clear error, and --timeout stops a launch that takes too long. Each libguestfs
# launch costs 20-40 s here (no KVM: TCG), so the test keeps to five full ones: ls and get share
# one launch per restore point (`files RP ls PATH... get PATH... --to DIR`); the second disk (GPT +
# NTFS) needs its own (a session mounts one disk), so do the mount (a background FUSE session)
# and the corrupted restore point (a third one).
source "$(dirname "$0")/lib.sh"

"$VBAK" lab create "$SITE" --vms 7 --proxies 1 --disk-size 1M --heartbeat-ms 500 >/dev/null
"$VBAK" lab up "$SITE" >/dev/null
wait_until 10 "the agent online" has_count online 1
VM=vm-guest-01
NOTES="/home/alice/notes with spaces.txt"
UTF8="/home/alice/café ü/résumé.txt"
MTIME=1709294400 # every entry of the lab's guest tree: 2024-03-01 12:00:00 UTC

# guest_dump TAG PATH OUT: the file as the guest holds it in the disk content saved as TAG
# (debugfs on the raw copy of the disk, the partition at 1 MiB)
guest_dump() {
  rm -f "$3"
  debugfs -R "dump -p \"$2\" \"$3\"" "$TEST_DIR/$1.raw?offset=1048576" >/dev/null 2>&1
  [[ -f $3 ]] || fail "debugfs could not dump $2 from $1"
}
st() { stat -c '%a %Y' "$1"; }
files() { "$VBAK" files "$@" --timeout 300; }

# A damaged spot in the guest's file system: /data/bad-dir-link is a second link to /data itself
# (a directory linked into itself), which the guest's kernel refuses to stat.
img=$(site_json | jq -r --arg vm "$VM" '.vms[] | select(.name == $vm) | .disks[0].file_uri')
debugfs -w -R "link /data /data/bad-dir-link" "$img?offset=1048576" >/dev/null 2>&1 \
  || fail "debugfs could not link /data into itself"

# ---- full, a guest file changed, incremental
"$VBAK" lab cat "$SITE" "$VM" 2000 "$TEST_DIR/full.raw"
"$VBAK" lab cat "$SITE" "$VM" 2001 "$TEST_DIR/ntfs.raw"
job1=$(backup_json "$VM")
[[ $(jq -r .state <<<"$job1") == succeeded ]] || fail "full backup: $job1"
rp1=$(rp_of "$job1" "$VM")
t0=$(date +%s)
"$VBAK" lab mutate "$SITE" "$VM" --file "$NOTES" --content "second notes, changed in the guest" \
  >"$TEST_DIR/mutate.out" || fail "lab mutate --file: $(cat "$TEST_DIR/mutate.out")"
t1=$(date +%s)
grep -q "^$VM disk 2000: wrote [0-9]* bytes" "$TEST_DIR/mutate.out" || fail "mutate: $(cat "$TEST_DIR/mutate.out")"
"$VBAK" lab cat "$SITE" "$VM" 2000 "$TEST_DIR/incr.raw"
job2=$(backup_json "$VM")
[[ $(jq -r '.vm_details[0].mode' <<<"$job2") == incremental ]] || fail "second backup not incremental: $job2"
rp2=$(rp_of "$job2" "$VM")
pass "guest VM backed up full (rp $rp1), a guest file changed, then incremental (rp $rp2)"

# ---- usage: ls and get each once, paths after one of them, --to only with get (no launch)
for args in "ls /a ls /b" "/a" "ls /a --to $TEST_DIR" "get /a"; do
  set +e
  # shellcheck disable=SC2086 # the words are the arguments
  "$VBAK" files "$rp1" $args >/dev/null 2>"$TEST_DIR/usage.err"
  rc=$?
  set -e
  [[ $rc == 2 ]] && grep -q "see --help" "$TEST_DIR/usage.err" \
    || fail "files $args: exit status $rc, $(cat "$TEST_DIR/usage.err")"
done
[[ $("$VBAK" serves --json | jq length) == 0 ]] || fail "a refused command started a serve"
pass "files: a malformed ls/get request is refused with exit status 2 before any launch"

# ---- each restore point: ls and get in one appliance launch
# (the full: JSON; the incremental: text, two directories listed)
mkdir -p "$TEST_DIR/get1" "$TEST_DIR/get2" "$TEST_DIR/truth"
# the first get PATH is the unreadable entry: skipped by name, everything else copied, exit 1
set +e
files "$rp1" ls /home/alice /data get /data/bad-dir-link "$NOTES" "$UTF8" /data/sparse.img /data/large.bin \
  /home/alice/escape /data/setuid-tool "/data/caf"$'\xe9'"-latin1.txt" --to "$TEST_DIR/get1" --json \
  >"$TEST_DIR/ls1.json" 2>"$TEST_DIR/ls1.err"
rc=$?
set -e
[[ $rc == 1 ]] && grep -q "1 entries could not be read (named above); everything else was copied" "$TEST_DIR/ls1.err" \
  && grep -q "/data/bad-dir-link: skipped: the guest's file system could not read it" "$TEST_DIR/ls1.err" \
  || fail "files ls + get rp $rp1 with an unreadable entry: exit status $rc, $(cat "$TEST_DIR/ls1.err")"
jq -e '.unreadable == 1 and .copied[0] == {path: "/data/bad-dir-link", bytes: 0, unreadable: 1} and
  ([.copied[1:][] | .unreadable] | all(. == 0))' "$TEST_DIR/ls1.json" >/dev/null \
  || fail "files --json with an unreadable entry: $(jq -c '{unreadable, copied}' "$TEST_DIR/ls1.json")"
grep -Eq "appliance launched in [0-9.]+ s under (KVM|TCG)" "$TEST_DIR/ls1.err" \
  || fail "files ls does not say how the appliance launched: $(cat "$TEST_DIR/ls1.err")"
jq -e '[.entries[] | .name] == ["café ü", "escape", "motd-link", "notes with spaces.txt"]' \
  "$TEST_DIR/ls1.json" >/dev/null || fail "ls of rp $rp1: $(cat "$TEST_DIR/ls1.json")"
jq -e --argjson m $MTIME '.fs == "ext4" and .device == "/dev/sda1" and
  (.entries[] | select(.name == "escape") | .type == "symlink" and .target == "/etc/shadow") and
  (.entries[] | select(.name == "notes with spaces.txt") | .mode == 416 and .size == 12 and .mtime == $m) and
  (.entries[] | select(.name == "café ü") | .type == "dir" and .mode == 448) and
  .listings[0] == {path: "/home/alice", entries: .entries} and .listings[1].path == "/data"' \
  "$TEST_DIR/ls1.json" >/dev/null || fail "ls entries of rp $rp1: $(cat "$TEST_DIR/ls1.json")"
# a name that is not UTF-8 is listed readably, with its bytes in name_hex; an entry the guest
# cannot stat is "unreadable"
jq -e '.listings[1].entries | (.[] | select(.name == "caf\\xe9-latin1.txt") |
    .name_hex == "636166e92d6c6174696e312e747874" and .path_hex == "2f646174612f636166e92d6c6174696e312e747874") and
  (.[] | select(.name == "bad-dir-link") | .type == "unreadable")' "$TEST_DIR/ls1.json" >/dev/null \
  || fail "ls /data of rp $rp1 (a Latin-1 name, an unreadable entry): $(jq -c '.listings[1]' "$TEST_DIR/ls1.json")"
jq -e --arg n "$NOTES" '[.copied[1:][] | .path] == [$n, "/home/alice/café ü/résumé.txt", "/data/sparse.img",
  "/data/large.bin", "/home/alice/escape", "/data/setuid-tool", "/data/caf\\xe9-latin1.txt"] and
  (.copied[] | select(.path == $n) | .bytes == 12) and
  (.copied[-1] | .path_hex == "2f646174612f636166e92d6c6174696e312e747874" and .bytes == 13)' \
  "$TEST_DIR/ls1.json" >/dev/null \
  || fail "files get --json of rp $rp1: $(cat "$TEST_DIR/ls1.json")"
# get2 is an 8 MiB file system: the 16 MiB sparse file streams into it as holes, the 5 MiB
# large.bin fits once, its second copy (in data/) meets a full disk
mount -t tmpfs -o size=8m tmpfs "$TEST_DIR/get2" || fail "cannot mount a tmpfs on get2"
VB_ON_EXIT+=("umount '$TEST_DIR/get2'")
set +e
files "$rp2" ls /home/alice /data get "$NOTES" /home/alice /data/sparse.img /data/large.bin /data \
  --to "$TEST_DIR/get2" >"$TEST_DIR/ls2.txt" 2>"$TEST_DIR/ls2.err"
rc=$?
set -e
[[ $rc == 1 ]] || fail "files ls + get rp $rp2 into a full disk: exit status $rc, $(cat "$TEST_DIR/ls2.err")"
grep -q "/data/large.bin was not copied (its partial copy is removed): .*No space left on device" \
  "$TEST_DIR/ls2.err" || fail "full disk message: $(cat "$TEST_DIR/ls2.err")"
[[ ! -e $TEST_DIR/get2/data/large.bin && -f $TEST_DIR/get2/large.bin ]] \
  || fail "a partial copy was left in the full disk: $(ls -la "$TEST_DIR/get2/data")"
grep -q "/data/bad-dir-link: skipped: the guest's file system could not read it" "$TEST_DIR/ls2.err" \
  || fail "the unreadable entry is not named: $(cat "$TEST_DIR/ls2.err")"
[[ $(cat "$TEST_DIR/get2/data/caf"$'\xe9'"-latin1.txt") == "Latin-1 name" ]] \
  || fail "the Latin-1 name was not restored byte for byte: $(ls "$TEST_DIR/get2/data")"
[[ $(stat -c %s "$TEST_DIR/get2/sparse.img") == 16777216 && $(stat -c %b "$TEST_DIR/get2/sparse.img") -lt 100 ]] \
  || fail "sparse.img into 8 MiB: $(stat -c '%s bytes, %b blocks' "$TEST_DIR/get2/sparse.img")"
grep -qF 'caf\xe9-latin1.txt' "$TEST_DIR/ls2.txt" || fail "text ls of a Latin-1 name: $(cat "$TEST_DIR/ls2.txt")"
grep -q '^-rw-r--r-- *34 .* notes with spaces.txt$' "$TEST_DIR/ls2.txt" || fail "ls of rp $rp2: $(cat "$TEST_DIR/ls2.txt")"
grep -q '^lrwxrwxrwx .* escape -> /etc/shadow$' "$TEST_DIR/ls2.txt" || fail "ls of rp $rp2 (symlink): $(cat "$TEST_DIR/ls2.txt")"
# two listings, each under its path, then what get copied, in that order
line_of() { grep -nE -m1 -- "$1" "$TEST_DIR/ls2.txt" | cut -d: -f1; }
order=()
for re in '^/home/alice:$' ' notes with spaces\.txt$' '^/data:$' ' sparse\.img$' \
  "^$NOTES: 34 bytes\$" '^/home/alice: [0-9]+ bytes$'; do
  order+=("$(line_of "$re")")
  [[ -n ${order[-1]} ]] || fail "no line $re in the output of rp $rp2: $(cat "$TEST_DIR/ls2.txt")"
done
printf '%s\n' "${order[@]}" | sort -n -C \
  || fail "ls of two directories then get, rp $rp2 (lines ${order[*]}): $(cat "$TEST_DIR/ls2.txt")"
pass "files ls + get in one launch at each restore point: names with spaces, UTF-8 and Latin-1, modes, mtimes, symlinks, an unreadable entry; a full disk keeps no partial file"

# ---- get: each version of the changed file, and the rest of the tree, as the guest held it
for f in "$NOTES:get1/notes with spaces.txt:full" "$UTF8:get1/résumé.txt:full" \
         "/data/sparse.img:get1/sparse.img:full" "/data/large.bin:get1/large.bin:full" \
         "$NOTES:get2/notes with spaces.txt:incr" "$UTF8:get2/alice/café ü/résumé.txt:incr"; do
  IFS=: read -r path got tag <<<"$f"
  guest_dump "$tag" "$path" "$TEST_DIR/truth/x"
  cmp -s "$TEST_DIR/truth/x" "$TEST_DIR/$got" || fail "$got differs from $path in the guest at $tag"
  [[ $(st "$TEST_DIR/truth/x") == "$(st "$TEST_DIR/$got")" ]] \
    || fail "$got: mode/mtime $(st "$TEST_DIR/$got"), the guest had $(st "$TEST_DIR/truth/x")"
done
[[ $(cat "$TEST_DIR/get1/notes with spaces.txt") == "first notes" &&
   $(cat "$TEST_DIR/get2/notes with spaces.txt") == "second notes, changed in the guest" ]] \
  || fail "the two versions of $NOTES"
[[ $(st "$TEST_DIR/get1/notes with spaces.txt") == "640 $MTIME" ]] || fail "mode/mtime of the full's $NOTES"
read -r mode2 mtime2 <<<"$(st "$TEST_DIR/get2/notes with spaces.txt")"
[[ $mode2 == 644 ]] && ((mtime2 >= t0 && mtime2 <= t1)) || fail "the incremental's $NOTES: $mode2 $mtime2"
[[ -L $TEST_DIR/get1/escape && $(readlink "$TEST_DIR/get1/escape") == /etc/shadow ]] \
  || fail "a symlink pointing out of the guest must be copied as a symlink"
[[ $(readlink "$TEST_DIR/get2/alice/motd-link") == ../../etc/motd ]] || fail "symlink inside a copied directory"
[[ $(stat -c %b "$TEST_DIR/get1/sparse.img") -lt 100 && $(stat -c %s "$TEST_DIR/get1/sparse.img") == 16777216 ]] \
  || fail "sparse.img did not stay sparse: $(stat -c '%s bytes, %b blocks' "$TEST_DIR/get1/sparse.img")"
# the guest's set-user-ID bit is not carried over (a restore as root must not make a setuid file)
[[ $(stat -c %a "$TEST_DIR/get1/setuid-tool") == 755 && $(cat "$TEST_DIR/get1/setuid-tool") == *"echo tool"* ]] \
  || fail "setuid-tool: mode $(stat -c %a "$TEST_DIR/get1/setuid-tool") (the guest's 4755 must come back as 755)"
pass "files get: each version of the changed file byte-identical to the guest's, modes, mtimes, symlinks, sparse, no setuid"

# ---- the second disk: GPT and NTFS
mkdir "$TEST_DIR/get-ntfs"
files "$rp1" --disk 2001 ls / get /large.bin "/café ü.txt" --to "$TEST_DIR/get-ntfs" >"$TEST_DIR/ntfs.out" 2>&1 \
  || fail "files ls + get from the NTFS disk: $(cat "$TEST_DIR/ntfs.out")"
grep -Eq '^-[rwx-]{9} +[0-9]+ .* large\.bin$' "$TEST_DIR/ntfs.out" || fail "ls of the NTFS disk: $(cat "$TEST_DIR/ntfs.out")"
grep -q "disk 2001: .*/dev/sda1 (ntfs) mounted read-only" "$TEST_DIR/ntfs.out" || fail "NTFS: $(cat "$TEST_DIR/ntfs.out")"
dd if="$TEST_DIR/ntfs.raw" of="$TEST_DIR/ntfs.part" bs=1M skip=1 status=none # the partition at 1 MiB
for f in large.bin "café ü.txt"; do
  ntfscat "$TEST_DIR/ntfs.part" "$f" >"$TEST_DIR/truth/ntfs" 2>/dev/null || fail "ntfscat $f"
  cmp -s "$TEST_DIR/truth/ntfs" "$TEST_DIR/get-ntfs/$f" || fail "$f from the NTFS disk differs from the guest's"
done
pass "files get from a GPT + NTFS disk: byte-identical"

# ---- mount: the same tree to ls and cmp; prune keeps the restore point while mounted
mkdir "$TEST_DIR/mnt dir" # a space: mountinfo escapes it as \040
"$VBAK" mount "$rp2" "$TEST_DIR/mnt dir" --timeout 300 >"$TEST_DIR/mount.out" 2>&1 || fail "mount: $(cat "$TEST_DIR/mount.out")"
VB_ON_EXIT+=("fusermount -u '$TEST_DIR/mnt dir'")
grep -q "mounted read-only at $TEST_DIR/mnt dir" "$TEST_DIR/mount.out" || fail "mount: $(cat "$TEST_DIR/mount.out")"
[[ $(cd "$TEST_DIR/mnt dir/home/alice" && ls) == "$(cd "$TEST_DIR/get2/alice" && ls)" ]] \
  || fail "ls of the mount: $(ls "$TEST_DIR/mnt dir/home/alice")"
cmp -s "$TEST_DIR/mnt dir$NOTES" "$TEST_DIR/get2/notes with spaces.txt" || fail "cmp through the mount ($NOTES)"
guest_dump incr /data/large.bin "$TEST_DIR/truth/large"
cmp -s "$TEST_DIR/mnt dir/data/large.bin" "$TEST_DIR/truth/large" || fail "cmp through the mount (large.bin)"
touch "$TEST_DIR/mnt dir/new" 2>/dev/null && fail "the mount is writable"
pr=$("$VBAK" prune --keep-last 1 --dry-run --json) || fail "prune: $pr"
jq -e --arg rp "$rp2" '.restore_points[] | select(.id == ($rp | tonumber)) | .in_use[] | test("serve job")' \
  <<<"$pr" >/dev/null || fail "prune does not see the mounted restore point $rp2 as in use: $pr"
"$VBAK" umount "$TEST_DIR/mnt dir" || fail "umount"
mountpoint -q "$TEST_DIR/mnt dir" && fail "still mounted after vbak umount"
# umount returns once the mount's process ended its serve: the lease is gone at once
[[ $("$VBAK" serves --json | jq length) == 0 ]] || fail "vbak umount returned with the serve lease still held"
pass "mount: ls/cmp see the same tree, read-only; prune keeps the mounted restore point; umount ends the lease"

# ---- a corrupted file system: a clear error, not a crash or a hang
dd if=/dev/zero of="$img" bs=1024 seek=1025 count=2 conv=notrunc status=none # the ext4 superblock
job3=$(backup_json "$VM" --full)
rp3=$(rp_of "$job3" "$VM")
set +e
files "$rp3" ls / >"$TEST_DIR/bad.out" 2>"$TEST_DIR/bad.err"
rc=$?
set -e
[[ $rc == 1 ]] || fail "files ls of a corrupted file system: exit status $rc"
grep -q "no file system on the disk could be mounted: /dev/sda1" "$TEST_DIR/bad.err" \
  || fail "corrupted file system message: $(cat "$TEST_DIR/bad.err")"
[[ $("$VBAK" serves --json | jq length) == 0 ]] || fail "a failed session left its serve"
pass "a corrupted file system: exit status 1 and a clear message"

# ---- a launch that does not finish in --timeout is stopped, and takes its serve with it
set +e
"$VBAK" files "$rp2" ls / --timeout 2 >/dev/null 2>"$TEST_DIR/timeout.err"
rc=$?
set -e
[[ $rc == 1 ]] && grep -q "timed out (--timeout)" "$TEST_DIR/timeout.err" \
  || fail "--timeout 2: exit status $rc, $(cat "$TEST_DIR/timeout.err")"
wait_until 20 "the timed-out session's serve ends its lease" bash -c "[[ \$('$VBAK' serves --json | jq length) == 0 ]]"
pass "--timeout bounds a launch: exit status 1, a message, no serve left"
