#!/usr/bin/env bash
# s3.sh [--quick] — vbak's repository on S3 against restic, side by side on one Ceph RGW.
#
# Starts a Ceph RGW (tests/tools/rgw, bluestore on a sparse file) and makes the datapath bench's
# image (2 GiB; --quick: 512 MiB: 1 MiB random runs alternating with 1 MiB holes) and a copy with
# 5% of its 64 KiB blocks overwritten. Then measures, on the same server:
#   vbak (tests/bench/vb_bench_datapath: the agent's pipeline and repository code, format 2,
#     256 KiB chunks, zstd:3, into s3://vbak/...): full backup, incremental given the changed
#     areas, restore (checked with cmp);
#   restic 0.14 (restic -r s3:http://...): backup of the image, backup of the changed copy,
#     restore (checked with cmp).
# For each: wall time, logical GiB/s (image size ÷ wall time), CPU seconds of the tool and of the
# server's processes (radosgw, OSD, monitor: all on the same cores), peak RSS (/usr/bin/time -v), and
# the requests the server saw, by method (from radosgw's access log), per GiB stored.
#
# Environment: VB_TESTS_BIN (default build/tests), VB_BENCH_DIR (work directory parent, default
# build/), VB_BENCH_WORKERS (default 2 × nproc). Prints a table and a last line
#   RESULT full_gibps=… restic_full_gibps=… restore_gibps=… restic_restore_gibps=…
#          puts_per_gib=… peak_rss_mib=…
source "$(dirname "$0")/lib.sh" s3 "$@"
BIN=${VB_TESTS_BIN:-$BUILD/tests}/vb_bench_datapath
WORKERS=${VB_BENCH_WORKERS:-$((2 * $(nproc)))}
RGW=$SRC/tests/tools/rgw
trap '"$RGW" stop "$WORK/rgw" >/dev/null 2>&1; rm -rf "$WORK"' EXIT
bench_need_bins "$BIN"
bench_need_tools restic /usr/bin/time

"$RGW" start "$WORK/rgw" --bluestore $((4 * SIZE_BYTES + (2 << 30))) >/dev/null
# shellcheck disable=SC1091
source "$WORK/rgw/env"
RGWLOG=$WORK/rgw/log/client.rgw.a.log
(umask 077 && printf 'access_key_id = "%s"\nsecret_access_key = "%s"\n' "$VB_RGW_ACCESS_KEY" \
    "$VB_RGW_SECRET_KEY" >"$WORK/s3.cred")
export VB_BENCH_CREDENTIALS=$WORK/s3.cred
export AWS_ACCESS_KEY_ID=$VB_RGW_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$VB_RGW_SECRET_KEY
export RESTIC_PASSWORD=vbak-bench RESTIC_CACHE_DIR=$WORK/restic-cache

TICK=$(getconf CLK_TCK)
# server_ticks: CPU ticks (user+sys) the server's processes (radosgw, the OSD, the monitor) used
server_ticks() {
    local sum=0 pid
    for pid in $(pgrep -x 'radosgw|ceph-osd|ceph-mon'); do
        sum=$((sum + $(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0)))
    done
    echo "$sum"
}
# measure OUTFILE CMD... : runs CMD under /usr/bin/time -v; sets WALL (s), CPU (the tool's
# user+sys s), SCPU (the server's, s), RSS (MiB) and REQS (the requests radosgw logged
# meanwhile, "PUT=n GET=n HEAD=n POST=n DELETE=n").
measure() {
    local out=$1 before t0
    shift
    before=$(wc -l <"$RGWLOG")
    t0=$(server_ticks)
    bench_time "$out" "$@"
    SCPU=$(awk -v t="$(($(server_ticks) - t0))" -v k="$TICK" 'BEGIN { printf "%.2f", t / k }')
    CPU="$CPU/$SCPU"
    # beast's access lines: ... "METHOD /path HTTP/1.1" STATUS ...
    REQS=$(tail -n +"$((before + 1))" "$RGWLOG" | grep -oE '"(PUT|GET|HEAD|POST|DELETE) /' |
        tr -d '"/ ' | sort | uniq -c | awk '{ printf "%s=%s ", $2, $1 }')
}
rate() { awk -v g="$GIB" -v w="$1" 'BEGIN { printf "%.2f", (w > 0 ? g / w : 0) }'; }
count() { local n; n=$(sed -n "s/.*\\b$2=\\([0-9]*\\).*/\\1/p" <<<"$1" | head -1); echo "${n:-0}"; }
per_gib() { awk -v n="${1:-0}" -v b="$2" 'BEGIN { printf "%.0f", (b > 0 ? n / (b / 1073741824) : 0) }'; }
bucket_bytes() { # bytes stored in a bucket, from radosgw-admin
    radosgw-admin -c "$WORK/rgw/ceph.conf" bucket stats --bucket "$1" 2>/dev/null |
        jq '[.usage[]?.size_actual] | add // 0'
}

echo "S3 benchmark: image $SIZE, workers $WORKERS, $(nproc) cores, $(date -u +%FT%TZ)"
echo "Ceph RGW at $VB_RGW_ENDPOINT (bluestore), work directory $WORK"
cd "$WORK"
"$BIN" mkimage base.img "$SIZE" 1
cp --sparse=always base.img changed.img
"$BIN" mutate changed.img 5 2 changed.txt >/dev/null
grep -q ' beast: ' "$RGWLOG" || echo "s3.sh: warning: radosgw logs no access lines: request counts are empty" >&2

# ---- vbak ----
repo="s3://vbak/bench?endpoint=$VB_RGW_ENDPOINT&region=$VB_RGW_REGION"
"$BIN" init "$repo" 256K --format 2 >/dev/null
measure full.out "$BIN" backup "$repo" base.img full --workers "$WORKERS"
V_FULL=$WALL V_FRSS=$RSS V_FREQ=$REQS V_FCPU=$CPU
V_STORED=$(bucket_bytes vbak)
measure incr.out "$BIN" backup "$repo" changed.img incr --parent full --changed changed.txt \
    --workers "$WORKERS"
V_INCR=$WALL V_IRSS=$RSS V_IREQ=$REQS V_ICPU=$CPU
measure restore.out "$BIN" restore "$repo" full out.img --workers "$WORKERS"
V_REST=$WALL V_RRSS=$RSS V_RREQ=$REQS V_RCPU=$CPU
cmp -s out.img base.img || { echo "s3.sh: the vbak restore differs" >&2; exit 1; }
rm -f out.img

# ---- restic ----
rrepo="s3:$VB_RGW_ENDPOINT/restic"
restic -r "$rrepo" init -q >/dev/null
measure restic.out restic -r "$rrepo" backup -q --tag full base.img
R_FULL=$WALL R_FRSS=$RSS R_FREQ=$REQS R_FCPU=$CPU
R_STORED=$(bucket_bytes restic)
measure restic.out restic -r "$rrepo" backup -q --tag incr changed.img
R_INCR=$WALL R_IREQ=$REQS R_ICPU=$CPU
measure restic.out restic -r "$rrepo" restore latest --tag full --target "$WORK/restic-out"
R_REST=$WALL R_RRSS=$RSS R_RREQ=$REQS R_RCPU=$CPU
cmp -s "$WORK/restic-out/base.img" base.img || { echo "s3.sh: the restic restore differs" >&2; exit 1; }

printf '\n%-7s %-8s %8s %7s %11s %8s  %-40s\n' tool step wall_s GiB/s cpu/srv_cpu rss_MiB \
    "requests (per GiB stored)"
row() { # TOOL STEP WALL RSS REQS STORED CPU
    local r=() m
    for m in PUT GET HEAD POST DELETE; do
        r+=("$m=$(count "$5" "$m")/$(per_gib "$(count "$5" "$m")" "$6")")
    done
    printf '%-7s %-8s %8s %7s %11s %8s  %s\n' "$1" "$2" "$3" "$(rate "$3")" "$7" "$4" "${r[*]}"
}
row vbak full "$V_FULL" "$V_FRSS" "$V_FREQ" "$V_STORED" "$V_FCPU"
row vbak incr "$V_INCR" "$V_IRSS" "$V_IREQ" "$V_STORED" "$V_ICPU"
row vbak restore "$V_REST" "$V_RRSS" "$V_RREQ" "$V_STORED" "$V_RCPU"
row restic full "$R_FULL" "$R_FRSS" "$R_FREQ" "$R_STORED" "$R_FCPU"
row restic incr "$R_INCR" "-" "$R_IREQ" "$R_STORED" "$R_ICPU"
row restic restore "$R_REST" "$R_RRSS" "$R_RREQ" "$R_STORED" "$R_RCPU"
echo "(cpu/srv_cpu: the tool's user+sys seconds / radosgw's, the OSD's and the monitor's)"
echo "stored after the full backup: vbak $((V_STORED >> 20)) MiB, restic $((R_STORED >> 20)) MiB"
PEAK=$(printf '%s\n' "$V_FRSS" "$V_IRSS" "$V_RRSS" | sort -g | tail -1)
echo "RESULT full_gibps=$(rate "$V_FULL") restic_full_gibps=$(rate "$R_FULL")" \
    "restore_gibps=$(rate "$V_REST") restic_restore_gibps=$(rate "$R_REST")" \
    "puts_per_gib=$(per_gib "$(count "$V_FREQ" PUT)" "$V_STORED") peak_rss_mib=$PEAK"
