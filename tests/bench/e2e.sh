#!/usr/bin/env bash
# e2e.sh [--quick] [BUILD_DIR] — backup and restore end to end: CLI, coordinator, agents, wire.
#
# For 1 and for 4 agents (a lab site made with --proxies 1, then one with --proxies 4), one VM
# made with --vms 1 --disk-size 2G (--quick: 512M): the lab's VMFS VM, whose two disks are
# SIZE and a smaller second one (their capacities together are the logical bytes). Chunks of the
# lab's default size (256 KiB, what `vbak lab create` makes; VB_BENCH_CHUNK=1M for `vbak repo
# init`'s default), the datapath's the same. Per site:
#   a lab snapshot create + remove (timed: every backup pays one; redirect-on-write, so it costs
#   what the blocks written since cost, not the disk),
#   full backup (vbak backup VM --full --wait --json), `vbak lab mutate --percent 3`,
#   incremental backup, restore of the incremental to a directory (--to-dir), checked with cmp
#   against the disks; each timed around the CLI with --wait, with the CPU (utime+stime from
#   /proc/PID/stat) of the coordinator and of all agents over that step; and for each backup the
#   VM's wall time per phase as `vbak job show --json` gives it (snapshot, prepare, map, read,
#   index, commit, remove).
# Then, on the same machine, now, reading a copy of the same disk images: the repository datapath
# (tests/bench/vb_bench_datapath: the same chunk size, 8 workers = one agent's 4 slots x 2, straight into
# a repository), so "end to end / datapath" shows what the coordinator, the wire and the job cost;
# and restic (`restic backup`) and borg (`borg create`, no encryption, default lz4) backing up the
# same image files into repositories of their own, first run.
#
# Prints a table and a last line
#   RESULT e2e_full_1agent_gibps=… e2e_full_4agents_gibps=… e2e_incr_4agents_s=… e2e_restore_gibps=…
#          datapath_full_gibps=… e2e_over_datapath=… restic_gibps=… borg_gibps=… e2e_over_restic=…
#          incr_over_full_1agent=… incr_over_full_4agents=…
# (GiB/s = logical GiB ÷ wall seconds; e2e_restore_gibps with 4 agents; e2e_over_datapath and
# e2e_over_restic are the 1-agent full backup over the datapath's and restic's; incr_over_full is
# the incremental's wall time over the full's). Environment: VB_BENCH_DIR (work directory parent,
# default BUILD_DIR; needs about 5 × SIZE free).
source "$(dirname "$0")/lib.sh" e2e "$@"
VBAK=$BUILD/bin/vbak
DATAPATH=$BUILD/tests/vb_bench_datapath
bench_need_bins "$VBAK" "$DATAPATH"
bench_need_tools jq restic borg
TICK=$(getconf CLK_TCK)
CHUNK=${VB_BENCH_CHUNK:-256K} # the lab's default chunk size

SITE=
cleanup() {
    [[ -n $SITE && -d $SITE ]] && "$VBAK" lab down "$SITE" >/dev/null 2>&1
    rm -rf "$WORK"
}
trap cleanup EXIT

secs() { awk -v t="$1" -v k="$TICK" 'BEGIN { printf "%.2f", t / k }'; }
rate() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.3f", (s > 0 ? b / 1073741824 / s : 0) }'; }
gib() { awk -v b="$1" 'BEGIN { printf "%.3f", b / 1073741824 }'; }
# ticks PIDFILE...: utime+stime of the processes named by the pid files
ticks() {
    local sum=0 f
    for f in "$@"; do
        sum=$((sum + $(awk '{ print $14 + $15 }' "/proc/$(cat "$f")/stat")))
    done
    echo "$sum"
}

echo "end-to-end benchmark: one VM of $SIZE (+ its second disk), $(nproc) cores shared with" \
     "other work, $(date -u +%FT%TZ)"
ROWS=()
declare -A R
# step NAME CMD...: runs a CLI step with --wait --json, timed; sets WALL, CCPU, ACPU, OUT
step() {
    local name=$1; shift
    local c0 a0 t0 t1
    c0=$(ticks "$SITE/run/coordinator.pid")
    a0=$(ticks "$SITE"/run/agent-*.pid)
    t0=$(now_s)
    OUT=$("$@" 2>"$WORK/step.err") || { echo "e2e.sh: $name failed: $OUT" >&2; cat "$WORK/step.err" >&2; exit 1; }
    t1=$(now_s)
    [[ $(jq -r .state <<<"$OUT") == succeeded ]] || { echo "e2e.sh: $name: $OUT" >&2; exit 1; }
    WALL=$(elapsed "$t0" "$t1")
    CCPU=$(secs $(($(ticks "$SITE/run/coordinator.pid") - c0)))
    ACPU=$(secs $(($(ticks "$SITE"/run/agent-*.pid) - a0)))
}
PHASES=()
# phases AGENTS STEP: the job's (OUT's) time per phase from `vbak job show --json`, as a line
phases() {
    local line
    line=$("$VBAK" job show "$(jq .id <<<"$OUT")" --json | jq -r '.vm_details[0].timing |
        map("\(.phase) \(.ms / 1000)" + (if .phase == "read" then
            " (\(.bytes / 1073741824 * 1000 | round / 1000) GiB, \(.gib_per_s * 1000 | round / 1000) GiB/s)"
            else "" end)) | join(", ")')
    PHASES+=("$(printf '%-7s %-12s %s' "$1" "$2" "$line")")
}

for P in 1 4; do
    SITE=$WORK/site-$P
    mkdir -p "$SITE"
    "$VBAK" lab create "$SITE" --proxies "$P" --vms 1 --disk-size "$SIZE" --chunk-size "$CHUNK" >/dev/null
    export VBAK_CONFIG=$SITE/vbak.conf
    # the CLI's 5 s answer timeout was hit with 2 GiB disks on a loaded machine: wait longer
    echo 'timeout_ms = "120000"' >>"$VBAK_CONFIG"
    "$VBAK" lab up "$SITE" >/dev/null 2>&1
    for _ in $(seq 300); do
        [[ $("$VBAK" agents --json | jq '[.[] | select(.state == "online")] | length') == "$P" ]] && break
        sleep 0.1
    done
    VM=$("$VBAK" lab show "$SITE" --json | jq -r '.vms[0].name')
    LOGICAL=$("$VBAK" lab show "$SITE" --json | jq '[.vms[0].disks[].capacity] | add')
    NDISKS=$("$VBAK" lab show "$SITE" --json | jq '.vms[0].disks | length')
    if ((P == 1)); then # the other tools' input: the same images, before any mutation
        mkdir -p "$WORK/images"
        "$VBAK" lab show "$SITE" --json | jq -r '.vms[0].disks[].key' |
            while read -r key; do "$VBAK" lab cat "$SITE" "$VM" "$key" "$WORK/images/disk-$key.raw"; done
    fi
    sync
    # every backup snapshots the VM (redirect-on-write in the lab, as on VMware)
    S0=$(now_s)
    "$VBAK" lab snapshot create "$SITE" "$VM" bench-probe >/dev/null
    "$VBAK" lab snapshot remove "$SITE" "$VM" bench-probe >/dev/null
    SNAP_S=$(elapsed "$S0" "$(now_s)")
    ROWS+=("$(printf '%-7s %-12s %8s' "$P" "lab snapshot" "$SNAP_S")")

    step "full backup ($P agents)" "$VBAK" backup "$VM" --full --wait --json
    ROWS+=("$(printf '%-7s %-12s %8s %7s %8s %8s' "$P" full "$WALL" "$(rate "$LOGICAL" "$WALL")" "$CCPU" "$ACPU")")
    R[full_$P]=$(rate "$LOGICAL" "$WALL")
    R[fullwall_$P]=$WALL
    R[fullcpu_$P]=$CCPU
    phases "$P" full

    "$VBAK" lab mutate "$SITE" "$VM" --percent 3 >/dev/null
    sync
    step "incremental backup ($P agents)" "$VBAK" backup "$VM" --wait --json
    MODE=$(jq -r '.vm_details[0].mode' <<<"$OUT")
    RP=$(jq -r '.vm_details[0].restore_point' <<<"$OUT")
    [[ $MODE == incremental ]] || { echo "e2e.sh: the second backup was $MODE" >&2; exit 1; }
    ROWS+=("$(printf '%-7s %-12s %8s %7s %8s %8s' "$P" incremental "$WALL" "$(rate "$LOGICAL" "$WALL")" "$CCPU" "$ACPU")")
    R[incr_$P]=$WALL
    phases "$P" incremental

    step "restore ($P agents)" "$VBAK" restore "$RP" --to-dir "$WORK/restore-$P" --wait --json
    ROWS+=("$(printf '%-7s %-12s %8s %7s %8s %8s' "$P" restore "$WALL" "$(rate "$LOGICAL" "$WALL")" "$CCPU" "$ACPU")")
    R[restore_$P]=$(rate "$LOGICAL" "$WALL")
    "$VBAK" lab show "$SITE" --json | jq -r '.vms[0].disks[] | "\(.key) \(.file_uri)"' |
        while read -r key file; do
            out=$(ls "$WORK/restore-$P"/*"-$key.raw")
            cmp -s "$out" "$file" || { echo "e2e.sh: restored disk $key differs" >&2; exit 1; }
        done
    rm -rf "$WORK/restore-$P"
    "$VBAK" lab down "$SITE" >/dev/null 2>&1
    rm -rf "$SITE"
    SITE=
done

# ---- the datapath alone, same images, same machine, now ----
# as many readers as one agent runs at once: 4 task slots x 2 workers (the lab's agent.conf)
DP_WORKERS=8
"$DATAPATH" init "$WORK/dp-repo" "$CHUNK" >/dev/null
sync
D0=$(now_s)
for f in "$WORK"/images/*; do
    "$DATAPATH" backup "$WORK/dp-repo" "$f" "full-$(basename "$f")" --workers "$DP_WORKERS" >/dev/null
done
D1=$(now_s)
DP_WALL=$(elapsed "$D0" "$D1")
DP_RATE=$(rate "$LOGICAL" "$DP_WALL")
RATIO=$(awk -v a="${R[full_1]}" -v b="$DP_RATE" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')

# ---- restic and borg reading the same images, same machine, now (first backup of each) ----
export RESTIC_PASSWORD=bench RESTIC_CACHE_DIR=$WORK/restic-cache
restic init --repo "$WORK/restic-repo" >/dev/null 2>&1
sync
T0=$(now_s)
restic backup --repo "$WORK/restic-repo" --quiet "$WORK/images" >/dev/null
RESTIC_WALL=$(elapsed "$T0" "$(now_s)")
RESTIC_RATE=$(rate "$LOGICAL" "$RESTIC_WALL")
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_BASE_DIR=$WORK/borg-base
borg init --encryption=none "$WORK/borg-repo" >/dev/null 2>&1
sync
T0=$(now_s)
borg create "$WORK/borg-repo::bench" "$WORK/images" >/dev/null 2>&1
BORG_WALL=$(elapsed "$T0" "$(now_s)")
BORG_RATE=$(rate "$LOGICAL" "$BORG_WALL")
OVER_RESTIC=$(awk -v a="${R[full_1]}" -v b="$RESTIC_RATE" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
IOF_1=$(awk -v a="${R[incr_1]}" -v b="${R[fullwall_1]}" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }')
IOF_4=$(awk -v a="${R[incr_4]}" -v b="${R[fullwall_4]}" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }')

echo
echo "logical bytes: $(gib "$LOGICAL") GiB over $NDISKS disks; GiB/s = logical / wall;" \
     "cpu = user+sys seconds during the step"
printf '%-7s %-12s %8s %7s %8s %8s\n' agents step wall_s GiB/s coord_cpu agents_cpu
printf '%s\n' "${ROWS[@]}"
printf '%-7s %-12s %8s %7s\n' - "datapath" "$DP_WALL" "$DP_RATE"
printf '%-7s %-12s %8s %7s\n' - "restic" "$RESTIC_WALL" "$RESTIC_RATE"
printf '%-7s %-12s %8s %7s\n' - "borg" "$BORG_WALL" "$BORG_RATE"
echo "(chunks $CHUNK; datapath: vb_bench_datapath backup of the same images one after the other,"
echo " $DP_WORKERS workers = one agent's 4 slots x 2 workers, no coordinator, no snapshot;"
echo " restic $(restic version | awk '{ print $2 }') and borg $(borg --version | awk '{ print $2 }'): first backup of the same image files)"
echo "(lab snapshot: vbak lab snapshot create + remove with nothing written in between)"
echo
echo "time per phase of each backup (vbak job show --json: seconds)"
printf '%s\n' "${PHASES[@]}"
echo
echo "end to end / datapath, full backup with 1 agent: $RATIO; / restic: $OVER_RESTIC"
echo "incremental after a 3 % change / full, wall time: $IOF_1 (1 agent), $IOF_4 (4 agents)"
echo
echo "RESULT e2e_full_1agent_gibps=${R[full_1]} e2e_full_4agents_gibps=${R[full_4]}" \
     "e2e_incr_4agents_s=${R[incr_4]} e2e_restore_gibps=${R[restore_4]}" \
     "datapath_full_gibps=$DP_RATE e2e_over_datapath=$RATIO restic_gibps=$RESTIC_RATE" \
     "borg_gibps=$BORG_RATE e2e_over_restic=$OVER_RESTIC incr_over_full_1agent=$IOF_1" \
     "incr_over_full_4agents=$IOF_4"
