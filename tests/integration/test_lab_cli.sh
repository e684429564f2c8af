#!/usr/bin/env bash
# The `vbak lab` site subcommands: show, mutate, snapshot create/list/remove, svmotion, cbt-reset; help
# exits 0, errors are one line on stderr with a non-zero status.
set -euo pipefail
T=${VB_TESTS_BIN:?}
LAB="$T/lab_site" # the site and its disk servers, without daemons
vbak_lab() { "${VB_BIN:?}/vbak" lab "$@"; }
work=$(mktemp -d "${TMPDIR:-/tmp}/vbak-lab-cli.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
dir="$work/site"
mkdir "$dir"
"$LAB" create "$dir" --disk-size 1048576 --vms 6 --proxies 3

for sub in show mutate svmotion snapshot cbt-reset access; do
    vbak_lab "$sub" --help > "$work/out" || fail "$sub --help"
    grep -q "usage: vbak lab $sub" "$work/out" || fail "$sub --help: $(cat "$work/out")"
done

vbak_lab show "$dir" > "$work/show"
grep -q "esx-04 .*requires encryption" "$work/show" || fail "show: host requiring encryption"
grep -q "vm-vvol-clone-01 (vm-105) on esx-02, linked clone" "$work/show" || fail "show: linked clone"
grep -q 'snapshot snapshot-1 "before-upgrade"' "$work/show" || fail "show: pre-existing snapshot"
[ "$(grep -c '^  proxy-' "$work/show")" = 3 ] || fail "show: three proxies"
vbak_lab show "$dir" --json | jq -e '.proxies | length == 3' >/dev/null || fail "show --json"

# mutate prints what it wrote, and the change ID moves on.
before=$(vbak_lab show "$dir" --json | jq -r '.vms[0].disks[0].change_id')
vbak_lab mutate "$dir" vm-vmfs-01 --percent 50 --seed 5 > "$work/mut"
grep -q "^vm-vmfs-01 disk 2000: wrote [0-9]* bytes in [0-9]* extents: " "$work/mut" || fail "mutate: $(cat "$work/mut")"
after=$(vbak_lab show "$dir" --json | jq -r '.vms[0].disks[0].change_id')
[ "$before" != "$after" ] || fail "change ID did not move"

# snapshots
id=$(vbak_lab snapshot create "$dir" vm-vsan-01 "nightly 1")
[ "$id" = snapshot-2 ] || fail "snapshot id $id"
vbak_lab snapshot list "$dir" vm-vsan-01 > "$work/o"; grep -q "^snapshot-2	nightly 1$" "$work/o" || fail "snapshot list"
vbak_lab snapshot remove "$dir" vm-vsan-01 "nightly 1" >/dev/null
[ -z "$(vbak_lab snapshot list "$dir" vm-vsan-01)" ] || fail "snapshot not removed"

# errors: one line, non-zero
set +e
vbak_lab svmotion "$dir" vm-vmfs-01 vsanDatastore 2>"$work/err"; rc=$?
set -e
[ "$rc" = 1 ] || fail "svmotion to an unreachable datastore: rc $rc"
[ "$(wc -l < "$work/err")" = 1 ] || fail "error not one line: $(cat "$work/err")"
grep -q "does not mount vsanDatastore" "$work/err" || fail "svmotion message: $(cat "$work/err")"
set +e
vbak_lab mutate "$dir" vm-vmfs-01 --percent 0 2>/dev/null; rc=$?
vbak_lab show --json 2>/dev/null; rc2=$?
vbak_lab show "$work/nothing-here" 2>"$work/err"; rc3=$?
set -e
[ "$rc" = 2 ] && [ "$rc2" = 2 ] && [ "$rc3" = 1 ] || fail "usage/failure codes $rc $rc2 $rc3"
grep -q "lab show: " "$work/err" || fail "show of a missing site: $(cat "$work/err")"

vbak_lab access prepare "$dir" vm-vmfs-01 "vbak job 3" >/dev/null
vbak_lab show "$dir" > "$work/o"; grep -q "prepared for access by vbak job 3" "$work/o" || fail "show: access holder"
if vbak_lab svmotion "$dir" vm-vmfs-01 nfs-01 2>"$work/err"; then fail "svmotion while prepared for access"; fi
grep -q "blocked: prepared for access by vbak job 3" "$work/err" || fail "blocked message: $(cat "$work/err")"
vbak_lab access end "$dir" vm-vmfs-01 >/dev/null
vbak_lab svmotion "$dir" vm-vmfs-01 nfs-01 > "$work/o"; grep -q "moved vm-vmfs-01 to nfs-01" "$work/o" || fail "svmotion"
vbak_lab show "$dir" --json | jq -e '.vms[0].disks | all(.datastore == "nfs-01")' >/dev/null || fail "svmotion result"
vbak_lab cbt-reset "$dir" vm-vmfs-01 > "$work/o"; grep -q "reset" "$work/o" || fail "cbt-reset"
vbak_lab show "$dir" --json | jq -e '.vms[0].disks[0].change_id | endswith("/1")' >/dev/null || fail "cbt-reset gen"
echo ok
