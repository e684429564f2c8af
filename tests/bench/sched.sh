#!/usr/bin/env bash
# sched.sh [--quick] [BUILD_DIR] — the coordinator's scheduling at scale, with a null data path.
#
# 1. A lab site with one VM whose two disks are re-declared in site.json to hold 50,000 chunks of
#    64 KiB together (3.05 GiB; --quick: 5,000), sparse images with nothing written: the
#    coordinator never reads disks. coordinator.conf gets task_bytes = 65536, so a full backup
#    plans one extent task per chunk. Only the coordinator runs (the lab's agent is removed).
# 2. vbak-bench-sched: 200 agents in threads (--quick: 50), 4 slots each, each with its own CURVE
#    key enrolled with the site token and the lab proxy's facts; they answer every task at once
#    (map: all allocated; backup: an all-zero ChunkRef per chunk).
# 3. `vbak backup VM --wait --json`, timed; dispatch and completion rates as the agents saw them;
#    the coordinator's CPU (utime+stime from /proc/PID/stat, whole run and backup alone), peak RSS
#    (VmHWM) and catalog size (database + WAL) after the backup.
# 4. Restore-point queries at 100,000 restore points: the catalog bench (tests/bench/catalog) in
#    the catalog module directly; then its database is put under a coordinator and
#    `vbak restore-points VM --json` is timed end to end (CLI start, CURVE handshake, query, JSON).
#
# Prints a table and a last line
#   RESULT sched_completions_per_s=… sched_dispatch_per_s=… coord_cpu_s=… coord_rss_mib=…
#          catalog_mib=… rp_query_ms=…
# (rp_query_ms: the catalog bench's median for "restore-points VM (all)": the 100 restore points
# of one VM in a catalog of 100,000 + the 100,000 of one hot VM; its other queries are printed). Environment: VB_BENCH_DIR (work directory parent, default BUILD_DIR).
source "$(dirname "$0")/lib.sh" sched "$@"
VBAK=$BUILD/bin/vbak
BENCH=$BUILD/tests/vbak-bench-sched
CATBENCH=$BUILD/tests/vbak-bench-catalog
bench_need_bins "$VBAK" "$BENCH" "$CATBENCH"
bench_need_tools jq

if ((QUICK)); then TASKS=5000 AGENTS=50 RPS=10000; else TASKS=50000 AGENTS=200 RPS=100000; fi
SLOTS=4
CHUNK=65536
TICK=$(getconf CLK_TCK)

SITE=$WORK/site
BENCH_PID=
cleanup() {
    [[ -n $BENCH_PID ]] && kill "$BENCH_PID" 2>/dev/null && wait "$BENCH_PID" 2>/dev/null
    [[ -d $SITE ]] && "$VBAK" lab down "$SITE" >/dev/null 2>&1
    [[ -d $WORK/rp-site ]] && "$VBAK" lab down "$WORK/rp-site" >/dev/null 2>&1
    rm -rf "$WORK"
}
trap cleanup EXIT

conf_value() { sed -n "s/^$2 = \"\\(.*\\)\"$/\\1/p" "$1"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
secs() { awk -v t="$1" -v k="$TICK" 'BEGIN { printf "%.2f", t / k }'; }
hwm_mib() { awk '/^VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }

echo "scheduling benchmark: $AGENTS agents x $SLOTS slots, $TASKS extent tasks of 64 KiB," \
     "$(nproc) cores (shared), $(date -u +%FT%TZ)"

# ---- the site: one VM, disks re-declared large and sparse ----
mkdir -p "$SITE"
"$VBAK" lab create "$SITE" --proxies 1 --vms 1 --disk-size 1M --chunk-size 64K >/dev/null
export VBAK_CONFIG=$SITE/vbak.conf
echo 'timeout_ms = "120000"' >>"$VBAK_CONFIG" # a loaded machine: the CLI waits longer than 5 s
VM=$(jq -r '.vms[0].name' "$SITE/site.json")
NDISKS=$(jq '.vms[0].disks | length' "$SITE/site.json")
# disk 0 takes what the others leave; the others 16 chunks each
SMALL=$((16 * CHUNK))
BIG=$(((TASKS - 16 * (NDISKS - 1)) * CHUNK))
jq --argjson big "$BIG" --argjson small "$SMALL" \
   '.vms[0].disks |= [to_entries[] | .value.capacity = (if .key == 0 then $big else $small end) | .value]' \
   "$SITE/site.json" >"$WORK/site.json"
mv "$WORK/site.json" "$SITE/site.json"
"$VBAK" lab show "$SITE" --json | jq -r '.vms[0].disks[] | "\(.file_uri) \(.capacity)"' |
    while read -r file cap; do truncate -s "$cap" "$file"; done
AGENT_CONF=$SITE/agent-1.conf
ENDPOINT=$(conf_value "$AGENT_CONF" coordinator_endpoint)
SERVER_KEY=$(conf_value "$AGENT_CONF" coordinator_public_key)
TOKEN=$(conf_value "$AGENT_CONF" enrollment_token_file)
FACTS=(--host "$(conf_value "$AGENT_CONF" host)" --datastore "$(conf_value "$AGENT_CONF" datastore)"
       --luns "$(conf_value "$AGENT_CONF" luns)" --transports "$(conf_value "$AGENT_CONF" transports)")
rm -f "$SITE"/agent-*.conf
echo 'task_bytes = "65536"' >>"$SITE/coordinator.conf"
echo 'log_level = "warn"' >>"$SITE/coordinator.conf"
"$VBAK" lab up "$SITE" >/dev/null
COORD=$(cat "$SITE/run/coordinator.pid")
echo "site: $VM, $NDISKS disks, $(mib $((BIG + SMALL * (NDISKS - 1)))) MiB logical, sparse;" \
     "coordinator pid $COORD"

# ---- agents ----
T0=$(cpu_ticks "$COORD")
"$BENCH" "$ENDPOINT" "$SERVER_KEY" "$TOKEN" --agents "$AGENTS" --slots "$SLOTS" "${FACTS[@]}" \
    >"$WORK/bench.out" 2>"$WORK/bench.err" &
BENCH_PID=$!
for _ in $(seq 600); do
    grep -q '^ready' "$WORK/bench.out" && break
    kill -0 "$BENCH_PID" 2>/dev/null || { cat "$WORK/bench.err" >&2; exit 1; }
    sleep 0.2
done
grep -q '^ready' "$WORK/bench.out" || { echo "sched.sh: agents did not enroll" >&2; exit 1; }
ENROLL_S=$(sed -n 's/^ready .*enroll_s=\([0-9.]*\).*/\1/p' "$WORK/bench.out")
sleep 2 # a heartbeat round: every agent is online and has announced its free slots
ONLINE=$("$VBAK" agents --json | jq '[.[] | select(.state == "online")] | length')
T1=$(cpu_ticks "$COORD")

# ---- the backup ----
PERF_PID=
if [[ -n ${VB_BENCH_PERF:-} ]]; then # a call-graph profile of the coordinator during the backup
    perf record -g -p "$COORD" -o "$WORK/perf.data" >/dev/null 2>&1 &
    PERF_PID=$!
    sleep 0.5
fi
A1=$(cpu_ticks "$BENCH_PID")
thread_ticks() { # the coordinator's own threads (main, actors), then libzmq's I/O threads
    awk '{ if ($2 ~ /ZMQbg/) z += $14 + $15; else m += $14 + $15 } END { print m + 0, z + 0 }' \
        /proc/"$COORD"/task/*/stat
}
read -r M0 Z0 < <(thread_ticks)
read -r _ U0 N0 S0 I0 W0 _ </proc/stat
B0=$(now_s)
JOB=$("$VBAK" backup "$VM" --full --wait --json 2>"$WORK/backup.err") || {
    cat "$WORK/backup.err" >&2; echo "$JOB" >&2; exit 1; }
B1=$(now_s)
T2=$(cpu_ticks "$COORD")
A2=$(cpu_ticks "$BENCH_PID")
read -r M1 Z1 < <(thread_ticks)
read -r _ U1 N1 S1 I1 W1 _ </proc/stat
IDLE_PCT=$(awk -v b=$((U1 + N1 + S1 - U0 - N0 - S0)) -v i=$((I1 + W1 - I0 - W0)) \
    'BEGIN { printf "%.0f", (b + i > 0 ? 100 * i / (b + i) : 0) }')
if [[ -n $PERF_PID ]]; then
    kill -INT "$PERF_PID"
    wait "$PERF_PID" || true
    { perf report -i "$WORK/perf.data" --stdio --no-children -g none --sort comm,dso 2>/dev/null
      perf report -i "$WORK/perf.data" --stdio --no-children -g none --sort dso,symbol \
          --percent-limit 0.4 2>/dev/null; } >"$VB_BENCH_PERF" || true
    echo "perf report of the coordinator written to $VB_BENCH_PERF"
fi
STATE=$(jq -r .state <<<"$JOB")
[[ $STATE == succeeded ]] || { echo "sched.sh: backup $STATE: $JOB" >&2; tail "$SITE"/log/*.log >&2; exit 1; }
BACKUP_S=$(elapsed "$B0" "$B1")
RSS=$(hwm_mib "$COORD")
kill "$BENCH_PID"
wait "$BENCH_PID" || true
BENCH_PID=
LINE=$(grep '^SCHED' "$WORK/bench.out")
kv() { sed -n "s/.*\\b$1=\\([0-9.]*\\).*/\\1/p" <<<"$LINE"; }
JOB_ID=$(jq -r .id <<<"$JOB")
NTASKS=$("$VBAK" job show "$JOB_ID" --json | jq '.tasks | length')
sleep 0.5
CAT_BYTES=$(( $(stat -c %s "$SITE/catalog.db") + $(stat -c %s "$SITE/catalog.db-wal" 2>/dev/null || echo 0) ))
IDX_BYTES=$(du -sb "$SITE/repo" | cut -f1)
"$VBAK" lab down "$SITE" >/dev/null

# ---- restore-point queries ----
mkdir -p "$WORK/cat"
"$CATBENCH" "$WORK/cat" --rps "$RPS" --hot "$RPS" --tasks "$TASKS" >"$WORK/catbench.out" 2>"$WORK/catbench.err" ||
    { cat "$WORK/catbench.err" >&2; exit 1; }
median_of() { awk -v q="$1" 'index($0, q) { for (i = 1; i <= NF; i++) if ($i == "median") print $(i + 1) }' \
    "$WORK/catbench.out" | head -1; }
RP_MS=$(median_of "restore-points VM (all)")
# the same catalog under a coordinator: the CLI end to end
RPS_SITE=$WORK/rp-site
mkdir -p "$RPS_SITE"
"$VBAK" lab create "$RPS_SITE" --proxies 1 --vms 1 --disk-size 1M >/dev/null
rm -f "$RPS_SITE"/agent-*.conf
cp "$WORK/cat/catalog.db" "$(conf_value "$RPS_SITE/coordinator.conf" catalog)"
VBAK_CONFIG=$RPS_SITE/vbak.conf
export VBAK_CONFIG
"$VBAK" lab up "$RPS_SITE" >/dev/null
cli_ms() { # cli_ms RUNS ARGS...: median wall ms of `vbak ARGS` over RUNS runs (output in cli.out)
    local runs=$1; shift
    local times=()
    for _ in $(seq "$runs"); do
        local a b
        a=$(now_s)
        "$VBAK" "$@" >"$WORK/cli.out"
        b=$(now_s)
        times+=("$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", (b - a) * 1000 }')")
    done
    printf '%s\n' "${times[@]}" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
CLI_ONE=$(cli_ms 20 restore-points vm-0001 --json)
ROWS_ONE=$(jq length "$WORK/cli.out")
CLI_WIN=$(cli_ms 20 restore-points hot-vm --after 2023-12-19T15:00:00Z --before 2023-12-19T16:00:00Z --json)
ROWS_WIN=$(jq length "$WORK/cli.out")
CLI_HOT=$(cli_ms 5 restore-points hot-vm --json)
ROWS_HOT=$(jq length "$WORK/cli.out")
CLI_STATUS=$(cli_ms 20 status --json)
"$VBAK" lab down "$RPS_SITE" >/dev/null

# ---- report ----
DISP=$(kv dispatch_per_s)
COMP=$(kv completions_per_s)
JOB_RATE=$(awk -v n="$NTASKS" -v s="$BACKUP_S" 'BEGIN { printf "%.0f", n / s }')
echo
echo "coordinator with $ONLINE agents online (enrolled in $ENROLL_S s):"
printf '  %-44s %s\n' "tasks in the job (maps + extent tasks)" "$NTASKS"
printf '  %-44s %s\n' "assigns received / results sent" "$(kv assigns) / $(kv results)"
printf '  %-44s %s s\n' "backup wall time (vbak backup --wait)" "$BACKUP_S"
printf '  %-44s %s /s  (over %s s)\n' "dispatch rate (first to last assign)" "$DISP" "$(kv dispatch_s)"
printf '  %-44s %s /s  (over %s s; peak %s in 1 s)\n' "completion rate (first assign to last result)" \
    "$COMP" "$(kv completion_s)" "$(kv peak_completions_1s)"
printf '  %-44s %s /s\n' "tasks / backup wall time" "$JOB_RATE"
printf '  %-44s %s s (backup %s s, enrolment %s s)\n' "coordinator CPU user+sys" \
    "$(secs $((T2 - T0)))" "$(secs $((T2 - T1)))" "$(secs $((T1 - T0)))"
printf '  %-44s %s s coordinator threads, %s s ZMQ I/O thread\n' "  of which (backup)" \
    "$(secs $((M1 - M0)))" "$(secs $((Z1 - Z0)))"
CAPACITY=$(awk -v n="$NTASKS" -v t=$((M1 - M0)) -v k="$TICK" 'BEGIN { printf "%.0f", (t > 0 ? n * k / t : 0) }')
printf '  %-44s %s /s\n' "tasks per CPU second of the coordinator threads" "$CAPACITY"
printf '  %-44s %s MiB\n' "coordinator peak RSS (VmHWM)" "$RSS"
printf '  %-44s %s s\n' "simulated agents' CPU during the backup" "$(secs $((A2 - A1)))"
printf '  %-44s %s %%\n' "machine idle during the backup (/proc/stat)" "$IDLE_PCT"
printf '  %-44s %s MiB\n' "catalog (db + wal)" "$(mib "$CAT_BYTES")"
printf '  %-44s %s MiB\n' "repository (disk indexes of holes)" "$(mib "$IDX_BYTES")"
echo
echo "catalog bench (tests/bench/catalog, in process):"
sed 's/^/  /' "$WORK/catbench.out"
echo
echo "vbak restore-points through the coordinator (median wall ms of the CLI, incl. process start):"
printf '  %-52s %8s ms  rows %s\n' "vbak status (the CLI's fixed cost)" "$CLI_STATUS" "-"
printf '  %-52s %8s ms  rows %s\n' "restore-points vm-0001 (its $((RPS / 1000)) of $((2 * RPS)))" "$CLI_ONE" "$ROWS_ONE"
printf '  %-52s %8s ms  rows %s\n' "restore-points hot-vm --after/--before (1 h)" "$CLI_WIN" "$ROWS_WIN"
printf '  %-52s %8s ms  rows %s\n' "restore-points hot-vm (all of them)" "$CLI_HOT" "$ROWS_HOT"
echo
echo "RESULT sched_completions_per_s=$COMP sched_dispatch_per_s=$DISP coord_cpu_s=$(secs $((T2 - T1)))" \
     "coord_rss_mib=$RSS catalog_mib=$(mib "$CAT_BYTES") rp_query_ms=$RP_MS" \
     "tasks_per_coord_cpu_s=$CAPACITY machine_idle_pct=$IDLE_PCT"
