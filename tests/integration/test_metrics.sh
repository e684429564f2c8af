#!/usr/bin/env bash
# /metrics: one table of figures feeds `vbak status --json` and the Prometheus text; a scrape
# passes promtool, and a real Prometheus scrapes the coordinator and answers a PromQL query
# about a finished backup.
source "$(dirname "$0")/lib.sh"
command -v promtool >/dev/null && command -v prometheus >/dev/null \
  || fail "promtool and prometheus are needed (Debian package prometheus; deploy/install-deps.sh)"

"$VBAK" lab create "$SITE" --proxies 1 --vms 1 --disk-size 2M >/dev/null
metrics_port=$(free_port)
printf 'metrics_endpoint = "127.0.0.1:%s"\nmetrics_refresh_ms = "200"\nrepository_census_s = "1"\n' \
  "$metrics_port" >>"$SITE/coordinator.conf"
"$VBAK" lab up "$SITE" >/dev/null
wait_until 15 "agent online" has_count online 1
url="http://127.0.0.1:$metrics_port/metrics"

job=$(backup_json vm-vmfs-01) || fail "backup failed: $job"
[[ $(jq -r .state <<<"$job") == succeeded ]] || fail "backup did not succeed: $job"
rp=$(rp_of "$job" vm-vmfs-01)

# the loop renews the text every metrics_refresh_ms: wait for the backup to show
has_backup() { curl -sf "$url" | grep -q '^vbak_last_backup_success_timestamp_seconds{vm="vm-vmfs-01"} [1-9]'; }
wait_until 10 "the backup in /metrics" has_backup
curl -sf "$url" >"$TEST_DIR/scrape.txt"
curl -sfI "$url" | grep -qi '^content-type: text/plain; version=0.0.4' || fail "wrong content type"
promtool check metrics <"$TEST_DIR/scrape.txt" >"$TEST_DIR/promtool.out" 2>&1 \
  || fail "promtool: $(cat "$TEST_DIR/promtool.out")"
for series in 'vbak_agents{state="online"} 1' 'vbak_restore_points 1' \
              'vbak_jobs{kind="backup",state="succeeded"} 1' 'vbak_tasks{state="running"} 0' \
              'vbak_tasks{state="queued"} 0' 'vbak_tasks_done_total' \
              'vbak_task_duration_seconds_bucket{le="+Inf"}' 'vbak_read_bytes_total' \
              'vbak_stored_bytes_total' 'vbak_deduplicated_bytes_total' \
              'vbak_snapshot_removals_pending 0' 'vbak_dropped_malformed_total 0' \
              'vbak_refused_token_total 0'; do
  grep -qF "$series" "$TEST_DIR/scrape.txt" || fail "no '$series' in the scrape: $(cat "$TEST_DIR/scrape.txt")"
done
# the same figures in vbak status --json (one table feeds both)
st=$("$VBAK" status --json)
read_bytes=$(sed -n 's/^vbak_read_bytes_total //p' "$TEST_DIR/scrape.txt")
[[ $read_bytes -gt 0 && $(jq .counters.bytes_read <<<"$st") == "$read_bytes" ]] \
  || fail "bytes read: /metrics $read_bytes, status $(jq .counters.bytes_read <<<"$st")"
[[ $(jq '.last_backup["vm-vmfs-01"]' <<<"$st") -gt 0 && $(jq .restore_points <<<"$st") == 1 ]] \
  || fail "status --json lacks the census: $st"
[[ $(jq .task_duration.count <<<"$st") -ge 1 ]] || fail "no task durations: $st"
curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$metrics_port/other" | grep -q 404 \
  || fail "a path other than /metrics served"
pass "a scrape passes promtool check metrics and matches vbak status --json"

# the repository's objects and bytes, listed on the census worker every repository_census_s:
# they match what the repository directory holds once the job's writes (catalog copy too) ended
repo_files() { find "$SITE/repo" -type f ! -name '.*' | wc -l; }
repo_bytes() { find "$SITE/repo" -type f ! -name '.*' -printf '%s\n' | awk '{s += $1} END {print s + 0}'; }
repo_matches() {
  local scrape
  scrape=$(curl -sf "$url")
  [[ $(sed -n 's/^vbak_repository_objects //p' <<<"$scrape") == "$(repo_files)" &&
     $(sed -n 's/^vbak_repository_bytes //p' <<<"$scrape") == "$(repo_bytes)" ]]
}
wait_until 15 "repository objects and bytes in /metrics" repo_matches
[[ $(repo_files) -gt 3 ]] || fail "the repository holds only $(repo_files) files"
st=$("$VBAK" status --json)
[[ $(jq .repository.objects <<<"$st") == "$(repo_files)" && $(jq .repository.bytes <<<"$st") == "$(repo_bytes)" ]] \
  || fail "status --json repository: $(jq -c .repository <<<"$st"), directory $(repo_files) files $(repo_bytes) bytes"
"$VBAK" status | grep -q "^repository: $(repo_files) object(s), " || fail "vbak status: $("$VBAK" status)"
pass "the repository's objects and bytes in /metrics and vbak status match the repository"

prom_port=$(free_port)
cat >"$TEST_DIR/prometheus.yml" <<YML
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: vbak
    static_configs:
      - targets: ['127.0.0.1:$metrics_port']
YML
prometheus --config.file="$TEST_DIR/prometheus.yml" --storage.tsdb.path="$TEST_DIR/prom-data" \
  --web.listen-address="127.0.0.1:$prom_port" >"$TEST_DIR/prometheus.log" 2>&1 &
VB_PIDS+=($!)
prom="http://127.0.0.1:$prom_port"
wait_until 30 "prometheus ready" curl -sf "$prom/-/ready"
query() { curl -sf "$prom/api/v1/query" --data-urlencode "query=$1"; }
answers() { [[ $(query "$1" | jq '.data.result | length') -ge 1 ]]; }
wait_until 20 "prometheus scraped the backup" \
  answers 'vbak_last_backup_success_timestamp_seconds{vm="vm-vmfs-01"} > 0'
ts=$(query 'vbak_last_backup_success_timestamp_seconds{vm="vm-vmfs-01"}' | jq -r '.data.result[0].value[1]')
created=$("$VBAK" restore-point show "$rp" --json | jq -r .created)
[[ $ts -ge $(date -d "$created" +%s) && $ts -le $(date +%s) ]] \
  || fail "last success $ts is not the restore point's time ($created)"
pass "a real Prometheus scrapes the coordinator and answers a PromQL query about the backup"
