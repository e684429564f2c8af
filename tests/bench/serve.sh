#!/usr/bin/env bash
# serve.sh [--quick] [BUILD_DIR] — reading a restore point over NBD (`vbak serve`) against
# restoring it (`vbak restore --to-dir`).
#
# One lab VM made with --vms 1 --proxies 2 --disk-size 2G (--quick: 512M): the lab's VMFS VM,
# whose two disks are SIZE and a smaller second one; backed up full. Then, each timed:
#   vbak restore RP --to-dir DIR --wait   (through the coordinator and the agents),
#   vbak serve RP --background            (until the exports answer),
#   nbdcopy URI null: for every disk, one after the other (sequential read over the Unix socket,
#     holes skipped through base:allocation, as a restore skips them), and the same again with
#     the cache warm (the second read of a disk smaller than the 64 MiB cache, or not),
#   nbdcopy URI FILE of the largest disk, compared with cmp against the restored image,
#   and, on a second small site (--vms 7: the guest VM with MBR + ext4), `vbak files get` of one
#   file: the time to its first byte (serve, libguestfs appliance launch, mount, download).
# Prints a table and a last line
#   RESULT serve_nbdcopy_gibps=… serve_nbdcopy_again_gibps=… restore_gibps=… serve_over_restore=…
#          serve_start_s=… files_get_first_byte_s=…
# (GiB/s = logical GiB, the disks' capacities, ÷ wall seconds). Environment: VB_BENCH_DIR (work
# directory parent, default BUILD_DIR; needs about 3 × SIZE free).
source "$(dirname "$0")/lib.sh" serve "$@"
VBAK=$BUILD/bin/vbak
bench_need_bins "$VBAK"
bench_need_tools jq nbdcopy

SITE=$WORK/site
export VBAK_CONFIG=$SITE/vbak.conf
cleanup() {
    [[ -f $WORK/serve.pid ]] && kill "$(cat "$WORK/serve.pid")" 2>/dev/null
    [[ -d $SITE ]] && "$VBAK" lab down "$SITE" >/dev/null 2>&1
    rm -rf "$WORK"
}
trap cleanup EXIT

rate() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.3f", (s > 0 ? b / 1073741824 / s : 0) }'; }
row() { printf '%-44s %10s %10s\n' "$@"; }

"$VBAK" lab create "$SITE" --vms 1 --proxies 2 --disk-size "$SIZE" >/dev/null
"$VBAK" lab up "$SITE" >/dev/null
vm=vm-vmfs-01
until [[ $("$VBAK" agents --json | jq '[.[] | select(.state == "online")] | length') == 2 ]]; do sleep 0.1; done
job=$("$VBAK" backup "$vm" --full --wait --json)
rp=$(jq -r --arg vm "$vm" '.vm_details[] | select(.vm == $vm) | .restore_point' <<<"$job")
disks=$("$VBAK" restore-point show "$rp" --json | jq -r '.disks[] | "\(.key) \(.capacity)"')
bytes=$(awk '{ s += $2 } END { print s }' <<<"$disks")
big=$(sort -k2 -n <<<"$disks" | tail -1 | cut -d' ' -f1)

t0=$(now_s)
r=$("$VBAK" restore "$rp" --to-dir "$WORK/restored" --wait --json)
t1=$(now_s)
[[ $(jq -r .state <<<"$r") == succeeded ]] || { echo "serve.sh: restore failed: $r" >&2; exit 1; }
restore_s=$(elapsed "$t0" "$t1")

t0=$(now_s)
"$VBAK" serve "$rp" --background --pid-file "$WORK/serve.pid" --json >"$WORK/serve.json"
t1=$(now_s)
start_s=$(elapsed "$t0" "$t1")
uri() { jq -r --arg k "$1" '.exports[] | select(.disk == $k) | .uri' "$WORK/serve.json"; }
copy_all() {
    local k
    for k in $(cut -d' ' -f1 <<<"$disks"); do nbdcopy "$(uri "$k")" null:; done
}
t0=$(now_s); copy_all; t1=$(now_s)
copy_s=$(elapsed "$t0" "$t1")
t0=$(now_s); copy_all; t1=$(now_s)
again_s=$(elapsed "$t0" "$t1")
nbdcopy "$(uri "$big")" "$WORK/copy.raw"
cmp "$WORK/copy.raw" "$WORK/restored/$vm-$big.raw" || { echo "serve.sh: disk $big read over NBD differs from its restore" >&2; exit 1; }
kill "$(cat "$WORK/serve.pid")"

# File-level restore: time to first byte of `vbak files get` (serve start + libguestfs appliance
# launch + mount + download) on the lab's guest VM (MBR + ext4), in a small second site.
"$VBAK" lab down "$SITE" >/dev/null
GSITE=$WORK/gsite
export VBAK_CONFIG=$GSITE/vbak.conf
"$VBAK" lab create "$GSITE" --vms 7 --proxies 1 --disk-size 1M >/dev/null
SITE=$GSITE
"$VBAK" lab up "$GSITE" >/dev/null
until [[ $("$VBAK" agents --json | jq '[.[] | select(.state == "online")] | length') == 1 ]]; do sleep 0.1; done
grp=$("$VBAK" backup vm-guest-01 --wait --json | jq -r '.vm_details[0].restore_point')
mkdir "$WORK/files"
t0=$(now_s)
"$VBAK" files "$grp" get /etc/motd --to "$WORK/files" >/dev/null 2>"$WORK/files.err"
t1=$(now_s)
files_s=$(elapsed "$t0" "$t1")
launch=$(sed -n 's/.*launched in \([0-9.]*\) s under \([A-Z]*\).*/\1 s (\2)/p' "$WORK/files.err")

row "step ($(awk -v b="$bytes" 'BEGIN { printf "%.2f GiB", b / 1073741824 }') logical)" seconds GiB/s
row "vbak restore --to-dir" "$restore_s" "$(rate "$bytes" "$restore_s")"
row "vbak serve --background (until exports answer)" "$start_s" "-"
row "nbdcopy URI null: (every disk)" "$copy_s" "$(rate "$bytes" "$copy_s")"
row "nbdcopy URI null: again" "$again_s" "$(rate "$bytes" "$again_s")"
row "vbak files get /etc/motd (first byte)" "$files_s" "-"
echo "  (of which the libguestfs appliance launch: $launch)"
echo "RESULT serve_nbdcopy_gibps=$(rate "$bytes" "$copy_s") serve_nbdcopy_again_gibps=$(rate "$bytes" "$again_s")" \
    "restore_gibps=$(rate "$bytes" "$restore_s") serve_over_restore=$(awk -v a="$restore_s" -v b="$copy_s" 'BEGIN { printf "%.2f", a / b }')" \
    "serve_start_s=$start_s files_get_first_byte_s=$files_s"
