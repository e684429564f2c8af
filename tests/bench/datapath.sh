#!/usr/bin/env bash
# datapath.sh [--quick] — the repository and extent pipeline against restic, borg and the limits.
#
# Makes a raw image (2 GiB; --quick: 512 MiB) of 1 MiB runs of random data alternating with 1 MiB
# holes, and a copy with 5% of its 64 KiB blocks overwritten at random. Then, in one run, measures
# wall time, CPU time (user+sys), peak RSS (/usr/bin/time -v) and repository size for:
#   vbak (tests/bench/vb_bench_datapath: the real pipeline + repository code): full backup,
#     incremental of the changed copy given its changed areas, restore (checked with cmp, sparse
#     output), verify; zstd:3; rows of chunk size, repository format (1: a file per chunk, 2:
#     packs) and encryption (VB_BENCH_ROWS, default: 64K and 256K in both formats, 256K
#     encrypted in both, 1M and 4M in format 1); objs/GiB = files in the repository after the
#     full backup per GiB it stores.
#   restic: backup, restore.   borg: create --compression zstd,1 and none, extract --sparse.
#   the limits: cat of the image, openssl speed -evp sha256.
# Every tool reads the images from the page cache (they were just written); `sync` runs before
# each measurement so that nobody pays for another's dirty pages. A vbak backup includes its
# syncfs (chunks durable before the index is written); restores are not synced by any tool.
#
# Environment: VB_TESTS_BIN (default build/tests), VB_BENCH_DIR (work directory parent, default
# build/; needs about 16 GiB free for the full run), VB_BENCH_WORKERS (default: 2 × nproc: workers wait on direct I/O).
# Prints a table and a last line
#   RESULT full_gibps=… incr_s=… full_s=… restore_gibps=… restic_full_gibps=… borg_full_gibps=…
#          peak_rss_mib=… incr_new_mib=… f2_full_gibps=… f2_objs_per_gib=… f2_64k_incr_new_mib=…
#          f2_restore_gibps=…
# (logical GiB/s = image size ÷ wall time; RESULT figures for 256 KiB chunks without encryption,
# format 1 unless named f2_;
# peak_rss_mib is the largest of all vbak runs; borg_full_gibps is borg with zstd,1).
source "$(dirname "$0")/lib.sh" datapath "$@"
BIN=${VB_TESTS_BIN:-$BUILD/tests}/vb_bench_datapath
WORKERS=${VB_BENCH_WORKERS:-$((2 * $(nproc)))}
bench_need_bins "$BIN"
bench_need_tools restic borg openssl /usr/bin/time
if [[ $(df --output=fstype "$WORK" | tail -1) == tmpfs ]]; then
    echo "datapath.sh: warning: $WORK is on tmpfs; set VB_BENCH_DIR to a disk directory" >&2
fi

rate() { awk -v g="$GIB" -v w="$1" 'BEGIN { printf "%.2f", (w > 0 ? g / w : 0) }'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
dusize() { du -sb "$1" | cut -f1; }
kv() { sed -n "s/.*\\b$2=\\([0-9]*\\).*/\\1/p" "$1"; }

echo "datapath benchmark: image $SIZE, workers $WORKERS, $(nproc) cores, $(date -u +%FT%TZ)"
echo "work directory $WORK ($(df --output=fstype "$WORK" | tail -1))"
cd "$WORK"
"$BIN" mkimage base.img "$SIZE" 1
cp --sparse=always base.img changed.img
"$BIN" mutate changed.img 5 2 changed.txt >mutate.out
head -c 32 /dev/urandom >key
sync
echo "images: base $(mib "$(du -B1 base.img | cut -f1)") MiB allocated of $SIZE;" \
     "changed copy: $(sed -n 's/.*changed=\([0-9]*\).*/\1/p' mutate.out) of" \
     "$(sed -n 's/.*blocks=\([0-9]*\).*/\1/p' mutate.out) 64 KiB blocks overwritten"

# ---- limits ----
bench_time /dev/null cat base.img
CAT_WALL=$WALL
SHA=$(openssl speed -evp sha256 -seconds 1 -bytes 1048576 2>/dev/null |
      awk '/^sha256/ { sub("k", "", $2); printf "%.2f", $2 * 1000 / 1073741824 }')

# ---- vbak ----
ROWS=()
PEAK=0
BENCH_ROWS=${VB_BENCH_ROWS:-"64K:1:no 64K:2:no 256K:1:no 256K:1:yes 256K:2:no 256K:2:yes 1M:1:no 4M:1:no"}
for row in $BENCH_ROWS; do
        IFS=: read -r cs fmt enc <<<"$row"
        repo=$WORK/vbak-$cs-$fmt-$enc
        keyopt=()
        [[ $enc == yes ]] && keyopt=(--key "$WORK/key")
        "$BIN" init "$repo" "$cs" --format "$fmt" "${keyopt[@]}" >/dev/null
        bench_time full.out "$BIN" backup "$repo" base.img full --workers "$WORKERS" "${keyopt[@]}"
        F_WALL=$WALL F_CPU=$CPU F_RSS=$RSS
        F_SIZE=$(dusize "$repo")
        F_OBJS=$(awk -v n="$(find "$repo" -type f | wc -l)" -v b="$F_SIZE" \
                 'BEGIN { printf "%.0f", (b > 0 ? n / (b / 1073741824) : 0) }')
        bench_time incr.out "$BIN" backup "$repo" changed.img incr --parent full \
            --changed changed.txt --workers "$WORKERS" "${keyopt[@]}"
        I_WALL=$WALL I_CPU=$CPU I_RSS=$RSS
        I_CHUNKS=$(kv incr.out chunks_read)
        I_NEW=$(kv incr.out stored_bytes)
        bench_time restore.out "$BIN" restore "$repo" incr out.img --workers "$WORKERS" "${keyopt[@]}"
        R_WALL=$WALL R_CPU=$CPU R_RSS=$RSS
        cmp -s out.img changed.img || { echo "datapath.sh: restore of $cs/$enc differs" >&2; exit 1; }
        R_ALLOC=$(du -B1 out.img | cut -f1)
        ((R_ALLOC < SIZE_BYTES)) || { echo "datapath.sh: restored image is not sparse ($R_ALLOC of $SIZE_BYTES bytes allocated)" >&2; exit 1; }
        rm -f out.img
        bench_time verify.out "$BIN" verify "$repo" incr --workers "$WORKERS" "${keyopt[@]}"
        V_WALL=$WALL V_RSS=$RSS
        T_SIZE=$(dusize "$repo")
        for r in $F_RSS $I_RSS $R_RSS $V_RSS; do
            PEAK=$(awk -v a="$PEAK" -v b="$r" 'BEGIN { print (b > a ? b : a) }')
        done
        ROWS+=("$(printf '%-5s %-3s %-4s %7s %7s %6s %6s | %7s %6s %7s %8s | %7s %7s %6s | %7s | %8s %8s %8s' \
            "$cs" "$fmt" "$enc" "$F_WALL" "$(rate "$F_WALL")" "$F_CPU" "$F_RSS" \
            "$I_WALL" "$I_CPU" "$I_CHUNKS" "$(mib "$I_NEW")" \
            "$R_WALL" "$(rate "$R_WALL")" "$R_RSS" "$V_WALL" "$(mib "$F_SIZE")" "$(mib "$T_SIZE")" \
            "$F_OBJS")")
        if [[ $cs == 256K && $fmt == 1 && $enc == no ]]; then
            RES_FULL_S=$F_WALL RES_INCR_S=$I_WALL RES_RESTORE=$R_WALL RES_INCR_NEW=$I_NEW
        fi
        if [[ $cs == 256K && $fmt == 2 && $enc == no ]]; then
            RES_F2_FULL=$F_WALL RES_F2_OBJS=$F_OBJS RES_F2_REST=$R_WALL
        fi
        [[ $cs == 64K && $fmt == 2 && $enc == no ]] && RES_F2_64K_NEW=$I_NEW
        # Repositories stay until the end: on ext4, creating files right after thousands were
        # deleted makes inode allocation scan the recently deleted ones (a profile showed a third
        # of a backup's CPU time in find_inode_bit/recently_deleted).
done

# ---- restic ----
export RESTIC_PASSWORD=vbak-bench RESTIC_CACHE_DIR=$WORK/restic-cache
restic -r "$WORK/restic" init -q >/dev/null
bench_time restic.out restic -r "$WORK/restic" backup -q --tag full base.img
RS_FULL=$WALL RS_CPU=$CPU RS_RSS=$RSS
RS_FSIZE=$(dusize "$WORK/restic")
bench_time restic.out restic -r "$WORK/restic" backup -q --tag incr changed.img
RS_INCR=$WALL RS_ICPU=$CPU
RS_TSIZE=$(dusize "$WORK/restic")
bench_time restic.out restic -r "$WORK/restic" restore latest --tag full --target "$WORK/restic-out"
RS_REST=$WALL RS_RRSS=$RSS
cmp -s "$WORK/restic-out/base.img" base.img || { echo "datapath.sh: restic restore differs" >&2; exit 1; }
rm -rf "$WORK/restic" "$WORK/restic-out" "$WORK/restic-cache"

# ---- borg ----
export BORG_PASSPHRASE="" BORG_BASE_DIR=$WORK/borg-base
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
BORG_ROWS=()
for comp in zstd,1 none; do
    b=$WORK/borg-${comp%%,*}
    borg init --encryption=none "$b"
    bench_time borg.out borg create --compression "$comp" "$b::full" base.img
    B_FULL=$WALL B_CPU=$CPU B_RSS=$RSS
    B_FSIZE=$(dusize "$b")
    bench_time borg.out borg create --compression "$comp" "$b::incr" changed.img
    B_INCR=$WALL B_ICPU=$CPU
    B_TSIZE=$(dusize "$b")
    mkdir -p "$WORK/borg-out"
    bench_time borg.out bash -c "cd '$WORK/borg-out' && borg extract --sparse '$b::full'"
    B_REST=$WALL B_RRSS=$RSS
    cmp -s "$WORK/borg-out/base.img" base.img || { echo "datapath.sh: borg extract differs" >&2; exit 1; }
    rm -rf "$WORK/borg-out" "$b"
    [[ $comp == zstd,1 ]] && BORG_ZSTD_FULL=$B_FULL
    BORG_ROWS+=("$(printf '%-14s %7s %7s %6s %6s | %7s %6s | %7s %7s %6s | %8s %8s' \
        "borg $comp" "$B_FULL" "$(rate "$B_FULL")" "$B_CPU" "$B_RSS" "$B_INCR" "$B_ICPU" \
        "$B_REST" "$(rate "$B_REST")" "$B_RRSS" "$(mib "$B_FSIZE")" "$(mib "$B_TSIZE")")")
done

# ---- report ----
echo
echo "limits: cat $CAT_WALL s ($(rate "$CAT_WALL") GiB/s); openssl speed -evp sha256 (1 MiB blocks, one core): $SHA GiB/s"
echo
echo "vbak (s = wall seconds, GiB/s = logical $SIZE / wall, cpu = user+sys seconds, rss = peak MiB)"
printf '%-5s %-3s %-4s %7s %7s %6s %6s | %7s %6s %7s %8s | %7s %7s %6s | %7s | %8s %8s %8s\n' \
    chunk fmt enc full_s GiB/s cpu rss incr_s cpu chunks new_MiB rest_s GiB/s rss verif_s \
    repo_MiB +incr_MiB objs/GiB
printf '%s\n' "${ROWS[@]}"
echo "(chunks = chunks the incremental read; new_MiB = bytes it added to the repository;"
echo " repo_MiB after the full backup, +incr_MiB after the incremental too)"
echo
printf '%-14s %7s %7s %6s %6s | %7s %6s | %7s %7s %6s | %8s %8s\n' \
    tool full_s GiB/s cpu rss incr_s cpu rest_s GiB/s rss repo_MiB +incr_MiB
printf '%-14s %7s %7s %6s %6s | %7s %6s | %7s %7s %6s | %8s %8s\n' \
    restic "$RS_FULL" "$(rate "$RS_FULL")" "$RS_CPU" "$RS_RSS" "$RS_INCR" "$RS_ICPU" \
    "$RS_REST" "$(rate "$RS_REST")" "$RS_RRSS" "$(mib "$RS_FSIZE")" "$(mib "$RS_TSIZE")"
printf '%s\n' "${BORG_ROWS[@]}"
echo
echo "RESULT full_gibps=$(rate "${RES_FULL_S:-0}") incr_s=${RES_INCR_S:-} full_s=${RES_FULL_S:-}" \
     "restore_gibps=$(rate "${RES_RESTORE:-0}") restic_full_gibps=$(rate "$RS_FULL")" \
     "borg_full_gibps=$(rate "$BORG_ZSTD_FULL") peak_rss_mib=$PEAK" \
     "incr_new_mib=$(mib "${RES_INCR_NEW:-0}")" \
     "f2_full_gibps=$(rate "${RES_F2_FULL:-0}") f2_objs_per_gib=${RES_F2_OBJS:-}" \
     "f2_64k_incr_new_mib=$(mib "${RES_F2_64K_NEW:-0}")" \
     "f2_restore_gibps=$(rate "${RES_F2_REST:-0}")"
