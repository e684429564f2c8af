#!/usr/bin/env bash
# A lab site whose repository is a bucket of a real Ceph RGW (tests/tools/rgw, its own for this
# test): full and incremental backups restore byte-identical, encrypted and not; verify passes;
# the catalog rebuilt from the bucket alone has the same restore points; prune and GC run on it;
# radosgw killed and restarted in the middle of a backup leaves either a good restore point or
# none (never one that references a pack that is not there); a locked repository whose every
# object an attacker deleted with plain DELETEs still restores, and vbak repo undelete brings the
# objects back; prune under Object Lock keeps packs until the lock ends, then deletes them; the
# secret key is in no log, catalog, configuration, process list or wire message.
source "$(dirname "$0")/lib.sh"

RGW="$VB_SRC/tests/tools/rgw"
"$RGW" start "$TEST_DIR/rgw" >/dev/null || fail "could not start a Ceph RGW"
VB_ON_EXIT+=("'$RGW' stop '$TEST_DIR/rgw'")
# shellcheck disable=SC1091
source "$TEST_DIR/rgw/env"
creds="$TEST_DIR/s3.cred"
(umask 077 && printf 'access_key_id = "%s"\nsecret_access_key = "%s"\n' "$VB_RGW_ACCESS_KEY" \
  "$VB_RGW_SECRET_KEY" >"$creds")
url="s3://vbak-lab/site?endpoint=$VB_RGW_ENDPOINT&region=$VB_RGW_REGION"

# s3_keys PREFIX: the keys under PREFIX in the lab's bucket, one a line (at most 1000)
s3_keys() {
  curl -sf --aws-sigv4 "aws:amz:$VB_RGW_REGION:s3" -u "$VB_RGW_ACCESS_KEY:$VB_RGW_SECRET_KEY" \
    -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' \
    "$VB_RGW_ENDPOINT/vbak-lab?list-type=2&prefix=$(jq -rn --arg p "$1" '$p|@uri')" |
    grep -o '<Key>[^<]*</Key>' | sed 's/<[^>]*>//g'
}

chmod 644 "$creds"
out=$("$VBAK" lab create "$SITE" --repository "$url" --repository-credentials "$creds" 2>&1) &&
  fail "a credentials file others can read was taken: $out"
grep -q "chmod 600" <<<"$out" || fail "no clear refusal of a 0644 credentials file: $out"
chmod 600 "$creds"
rm -rf "$SITE"
"$VBAK" lab create "$SITE" --vms 2 --proxies 2 --disk-size 16M --encrypt --heartbeat-ms 500 \
  --repository "$url" --repository-credentials "$creds" >/dev/null || fail "lab create on S3"
[[ ! -e $SITE/repo ]] || fail "a lab on S3 made DIR/repo too"
[[ $(conf_value "$SITE/coordinator.conf" repository) == "$url" ]] || fail "coordinator.conf repository"
[[ -n $(s3_keys site/config) ]] || fail "no repository config object in the bucket"
export VBAK_WIRE_TRACE_DIR="$TEST_DIR/wire"
mkdir -p "$VBAK_WIRE_TRACE_DIR"
"$VBAK" lab up "$SITE" >/dev/null
unset VBAK_WIRE_TRACE_DIR
wait_until 10 "two agents online" has_count online 2
full_incremental_round
[[ -n $(s3_keys site/packs/) ]] || fail "no packs in the bucket"
pass "S3: full and incremental restore byte-identical and verify, encrypted"

# vbak serve reads the restore point from the bucket (the plugin gets the credentials file's path)
vm=${vms%%$'\n'*}
rp=$(rp_of "$job2" "$vm")
serve_bg "$rp"
for k in $(jq -r '.exports[].disk' "$TEST_DIR/serve.json"); do
  nbdcopy "$(uri_of "$k")" "$TEST_DIR/copy.raw" || fail "nbdcopy of the served rp $rp disk $k"
  cmp "$TEST_DIR/copy.raw" "$TEST_DIR/expect/incr/$vm-$k.raw" || fail "served rp $rp disk $k differs from the disk at its backup"
done
serve_stop
pass "S3: vbak serve exports an encrypted restore point from the bucket byte-identical"

out=$("$VBAK" catalog rebuild --repo "$url" --catalog "$TEST_DIR/rebuilt.db") ||
  fail "catalog rebuild from S3: $out"
want=$("$VBAK" restore-points --json | jq -r '.[] | [.id, .vm, .kind, (.parent // 0)] | @tsv' | sort)
got=$(sqlite3 -separator $'\t' "$TEST_DIR/rebuilt.db" \
  "select id, vm, kind, coalesce(parent_id, 0) from restore_points where state = 'complete'" | sort)
[[ $got == "$want" ]] || fail "rebuilt catalog: $got, catalog: $want"
stats=$("$VBAK" repo stats "$url" --json) || fail "repo stats on S3: $stats"
[[ $(jq -r .format_version <<<"$stats") == 2 && $(jq -r .packs <<<"$stats") -ge 1 ]] ||
  fail "stats: $stats"
pass "S3: the catalog rebuilt from the bucket has the same restore points; repo stats reads it"

pruned=$("$VBAK" prune --keep-last 1 --json) || fail "prune on S3: $pruned"
[[ $(jq .removed <<<"$pruned") == "$(wc -w <<<"$vms")" ]] || fail "prune removed: $pruned"
for vm in $vms; do
  check_restore "$(rp_of "$job2" "$vm")" incr
done
pass "S3: prune and GC keep the newest restore points restorable"

# radosgw killed during a backup and started again: requests retry with back-off. It goes
# down once the job runs and comes back once a daemon (an agent storing, or the coordinator
# writing indexes) has had a request fail against it and said it retries.
vm=$(head -1 <<<"$vms")
"$VBAK" lab mutate "$SITE" "$vm" --percent 30 >/dev/null
save_content fault
job=$("$VBAK" backup "$vm" --json | jq -r .job)
[[ $job =~ ^[0-9]+$ ]] || fail "backup did not start: $job"
"$RGW" kill-rgw "$TEST_DIR/rgw"
state_at_kill=$("$VBAK" job show "$job" --json | jq -r .state)
[[ $state_at_kill == running ]] || fail "the job ended before radosgw was down: $state_at_kill"
retried() { grep -q "store_s3: event=retry" "$SITE"/log/*.log; }
job_done() { "$VBAK" job show "$job" --json | jq -e '.state != "running"'; }
wait_until 120 "a request to the dead radosgw retried" retried
"$RGW" start-rgw "$TEST_DIR/rgw" >/dev/null || fail "radosgw did not come back"
wait_until 120 "the job's end" job_done
final=$("$VBAK" job show "$job" --json)
case $(jq -r .state <<<"$final") in
succeeded)
  rp=$(rp_of "$final" "$vm")
  check_restore "$rp" fault
  "$VBAK" verify "$rp" >/dev/null || fail "verify after the radosgw restart"
  ;;
failed)
  [[ -z $(jq -r '.vm_details[]?.restore_point // empty' <<<"$final") ]] ||
    fail "a failed job left a restore point: $final"
  ;;
*) fail "job after the radosgw restart: $final" ;;
esac
for rp in $("$VBAK" restore-points --json | jq -r '.[].id'); do
  "$VBAK" verify "$rp" >/dev/null || fail "restore point $rp does not verify after the restart"
done
checked=$("$VBAK" verify --repo "$url" --json) || fail "verify --repo after the restart: $checked"
[[ $(jq '.damaged | length' <<<"$checked") == 0 && $(jq .packs <<<"$checked") -ge 1 ]] ||
  fail "verify --repo after the restart: $checked"
pass "S3: radosgw killed and restarted during a backup: the job $(jq -r .state <<<"$final"), every restore point verifies"

# a second repository, not encrypted, under the same coordinator and agents
"$VBAK" lab down "$SITE" >/dev/null
plain="s3://vbak-lab/plain?endpoint=$VB_RGW_ENDPOINT&region=$VB_RGW_REGION"
"$VBAK" repo init "$plain" --credentials "$creds" >/dev/null || fail "repo init $plain"
sed -i "/^repository_key_file = /d; s|^repository = .*|repository = \"${plain//&/\\&}\"|" "$SITE/coordinator.conf"
sed -i '/^repository_key_file = /d' "$SITE"/agent-*.conf
"$VBAK" lab up "$SITE" >/dev/null
wait_until 10 "two agents online" has_count online 2
save_content plain
job4=$(backup_json --all --full)
[[ $(jq -r .state <<<"$job4") == succeeded ]] || fail "backup into the plain repository: $job4"
for vm in $vms; do check_restore "$(rp_of "$job4" "$vm")" plain; done
[[ $("$VBAK" repo stats "$plain" --json --credentials "$creds" | jq -r .encrypted) == false ]] ||
  fail "the second repository is encrypted"
pass "S3: an unencrypted repository restores byte-identical too"

# Object Lock: vbak repo init makes the bucket with it and records the lock; refusals in one line
locked="s3://vbak-lock/site?endpoint=$VB_RGW_ENDPOINT&region=$VB_RGW_REGION"
out=$("$VBAK" repo init "$locked" --credentials "$creds" --create-bucket --object-lock 30s 2>&1) ||
  fail "repo init --object-lock: $out"
[[ $out == *"Object Lock compliance 30 s"* ]] || fail "repo init --object-lock says: $out"
out=$("$VBAK" repo init "s3://vbak-lab/other?endpoint=$VB_RGW_ENDPOINT&region=$VB_RGW_REGION" \
  --credentials "$creds" --object-lock 1 2>&1) && fail "a bucket without Object Lock was taken"
[[ $out == *"bucket vbak-lab has no Object Lock"* && $(wc -l <<<"$out") == 1 ]] ||
  fail "bucket without Object Lock: $out"
[[ -z $(s3_keys other/) ]] || fail "the refused init wrote to the bucket"
out=$("$VBAK" repo init "$TEST_DIR/lockdir" --object-lock 1 2>&1) && fail "a directory took a lock"
[[ $out == *"Object Lock needs an S3 repository"* ]] || fail "directory with a lock: $out"
rc=0
out=$("$VBAK" repo init "$locked" --credentials "$creds" --object-lock 3x 2>&1) || rc=$?
[[ $rc == 2 && $out == *"--object-lock DAYS"* ]] || fail "--object-lock 3x: $out"
stats=$("$VBAK" repo stats "$locked" --credentials "$creds" --json) || fail "repo stats: $stats"
[[ $(jq -c '[.object_lock.seconds, .object_lock.mode, .object_lock.locked_objects]' <<<"$stats") == '[30,"compliance",1]' ]] ||
  fail "repo stats of a locked repository (only its config is written): $stats"
[[ $(jq '.object_lock.earliest_unlock - now | floor' <<<"$stats") -le 30 ]] || fail "earliest unlock: $stats"
"$VBAK" repo stats "$locked" --credentials "$creds" | grep -q '^locked  *1 object(s), 0.0 MiB, earliest unlock 20' ||
  fail "repo stats text lacks the locked line"
pass "S3: repo init --object-lock makes a locked bucket; a bucket without it and a directory are refused in one line"

# An attacker holding the keys sends a plain DELETE (no versionId) for every object of a locked
# repository: each only adds a delete marker. Restores read through the markers, byte-identical;
# vbak repo undelete brings the objects back, and verify --repo and a catalog rebuild see them.
"$VBAK" lab down "$SITE" >/dev/null
rps="s3://vbak-lock/rps?endpoint=$VB_RGW_ENDPOINT&region=$VB_RGW_REGION"
"$VBAK" repo init "$rps" --credentials "$creds" --object-lock 600s >/dev/null || fail "repo init $rps"
sed -i "s|^repository = .*|repository = \"${rps//&/\\&}\"|" "$SITE/coordinator.conf"
"$VBAK" lab up "$SITE" >/dev/null
wait_until 10 "two agents online" has_count online 2
save_content locked
job5=$(backup_json --all --full)
[[ $(jq -r .state <<<"$job5") == succeeded ]] || fail "backup into the locked repository: $job5"
s3() {
  curl -sf --aws-sigv4 "aws:amz:$VB_RGW_REGION:s3" -u "$VB_RGW_ACCESS_KEY:$VB_RGW_SECRET_KEY" \
    -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$@"
}
lock_keys() { s3 "$VB_RGW_ENDPOINT/vbak-lock?list-type=2&prefix=rps%2F" | grep -o '<Key>[^<]*</Key>' | sed 's/<[^>]*>//g'; }
keys=$(lock_keys)
[[ $(grep -c '^rps/packs/' <<<"$keys") -ge 1 && $(grep -c '^rps/manifests/' <<<"$keys") -ge 2 ]] ||
  fail "the locked repository lacks packs or manifests: $keys"
for k in $keys; do s3 -X DELETE "$VB_RGW_ENDPOINT/vbak-lock/$k" >/dev/null || fail "attacker's DELETE $k"; done
[[ -z $(lock_keys) ]] || fail "objects still listed after the plain DELETEs"
for vm in $vms; do
  rp=$(rp_of "$job5" "$vm")
  check_restore "$rp" locked
  "$VBAK" verify "$rp" >/dev/null || fail "verify of $rp through the delete markers"
done
pass "S3: every object of a locked repository deleted with plain DELETEs: restores read through the markers, byte-identical"

# A prune in this state is refused before the catalog forgets anything: the job fails with the
# one "undelete first" message and every restore point is still listed (a prune that forgot them
# first would leave their indexes as orphans once undeleted).
listed() { "$VBAK" restore-points --json | jq -c '[.[].id] | sort'; }
before=$(listed)
(($(jq length <<<"$before") > $(wc -w <<<"$vms"))) || fail "nothing for --keep-last 1 to prune: $before"
rc=0
out=$("$VBAK" prune --keep-last 1 2>&1) || rc=$?
[[ $rc == 1 && $(wc -l <<<"$out") == 1 && $out == *"hidden by delete markers"* &&
  $out == *"run \`vbak repo undelete $rps\` first"* ]] || fail "prune with the chunk index hidden: rc $rc, $out"
[[ $(listed) == "$before" ]] || fail "the refused prune removed restore points: $(listed), before $before"
pass "S3: prune while the chunk index is hidden fails in one line and removes no restore point"

dry=$("$VBAK" repo undelete "$rps" --credentials "$creds" --dry-run --json) || fail "undelete --dry-run: $dry"
n=$(wc -l <<<"$keys")
idx=$(grep -c '^rps/index/' <<<"$keys")
[[ $(jq -r .dry_run <<<"$dry") == true && $(jq '.brought_back + .index_objects_hidden' <<<"$dry") -ge $n ]] ||
  fail "undelete --dry-run of $n hidden objects ($idx index objects): $dry"
# (what the coordinator wrote since, such as catalog copies, is listed: only the deleted count)
back() { comm -12 <(sort <<<"$keys") <(lock_keys | sort); }
[[ -z $(back) ]] || fail "a dry run brought objects back: $(back)"
out=$("$VBAK" repo undelete "$rps" --credentials "$creds") || fail "undelete: $out"
[[ $out == *"brought back "* && $out == *"rebuilt the chunk index from"* ]] || fail "undelete says: $out"
[[ $(back | grep -vc '^rps/index/') == $((n - idx)) ]] || fail "not every object is listed again: $(back)"
checked=$("$VBAK" verify --repo "$rps" --json) || fail "verify --repo after undelete: $checked"
out=$("$VBAK" catalog rebuild --repo "$rps" --catalog "$TEST_DIR/rebuilt-lock.db") ||
  fail "catalog rebuild after undelete: $out"
[[ $(sqlite3 "$TEST_DIR/rebuilt-lock.db" "select count(*) from restore_points") == "$(wc -w <<<"$vms")" ]] ||
  fail "the rebuilt catalog lacks restore points: $out"
again=$("$VBAK" repo undelete "$rps" --credentials "$creds" --json) || fail "undelete again: $again"
[[ $(jq -c '[.brought_back, .index_rebuilt]' <<<"$again") == '[0,false]' ]] || fail "a second undelete: $again"
pass "S3: vbak repo undelete brings back what the markers hid (dry run first): verify --repo and catalog rebuild see it"

# Prune under Object Lock (a lock of 30 s, room for two backups on a loaded machine): the expired restore points go from the catalog but
# their packs are kept until the lock ends, and prune says so; a prune after the end deletes them.
"$VBAK" lab down "$SITE" >/dev/null
short="s3://vbak-lock/short?endpoint=$VB_RGW_ENDPOINT&region=$VB_RGW_REGION"
"$VBAK" repo init "$short" --credentials "$creds" --object-lock 30s >/dev/null || fail "repo init $short"
sed -i "s|^repository = .*|repository = \"${short//&/\\&}\"|" "$SITE/coordinator.conf"
"$VBAK" lab up "$SITE" >/dev/null
wait_until 10 "two agents online" has_count online 2
short_packs() { s3 "$VB_RGW_ENDPOINT/vbak-lock?list-type=2&prefix=short%2Fpacks%2F" | grep -o '<Key>[^<]*</Key>' | sed 's/<[^>]*>//g'; }
job6=$(backup_json --all --full)
[[ $(jq -r .state <<<"$job6") == succeeded ]] || fail "backup into the 30 s locked repository: $job6"
first=$(short_packs | sort)
for vm in $vms; do "$VBAK" lab mutate "$SITE" "$vm" --percent 100 >/dev/null; done
save_content mutated
job7=$(backup_json --all --full) # every chunk new: the first backup's packs die with its restore points
[[ $(jq -r .state <<<"$job7") == succeeded ]] || fail "second backup into the locked repository: $job7"
all=$(short_packs | sort)
pruned=$("$VBAK" prune --keep-last 1 --json) || fail "prune --json under Object Lock: $pruned"
nfirst=$(wc -l <<<"$first")
# (the restore points of the earlier repositories go too: only the newest of each VM stays)
[[ $(jq .removed <<<"$pruned") -ge $(wc -w <<<"$vms") &&
  $(jq -c '[.gc.packs.kept_locked, .gc.packs.deleted]' <<<"$pruned") == "[$nfirst,0]" ]] ||
  fail "prune --json under Object Lock ($nfirst dead packs): $pruned"
[[ $(short_packs | sort) == "$all" ]] || fail "a locked pack was deleted by prune"
until_s=$(jq .gc.packs.locked_until <<<"$pruned")
# the text of the same (a machine so loaded that the lock has ended by now deletes them instead:
# the checks after the lock cover that)
if (($(date +%s) + 2 < until_s)); then
  out=$("$VBAK" prune --keep-last 1 2>&1) || fail "prune under Object Lock: $out"
  grep -q "packs: $nfirst object(s) (.* MiB) kept under Object Lock until 20.*; a later prune or gc deletes them" <<<"$out" ||
    fail "prune does not say the packs are kept under Object Lock: $out"
fi
wait_until 60 "the packs' lock ends" bash -c "(( \$(date +%s) > $until_s ))"
pruned=$("$VBAK" prune --keep-last 1 --json) || fail "prune after the lock ended: $pruned"
[[ $(jq -c '[.gc.packs.kept_locked, .gc.packs.deleted]' <<<"$pruned") == "[null,$nfirst]" ]] ||
  fail "prune after the lock ended: $pruned"
[[ -z $(comm -12 <(short_packs | sort) <(echo "$first")) ]] || fail "dead packs left after the lock ended"
[[ $(comm -13 <(echo "$first") <(echo "$all")) == "$(short_packs | sort)" ]] || fail "a live pack went"
for vm in $vms; do check_restore "$(rp_of "$job7" "$vm")" mutated; done
pass "S3: prune under a lock of 30 s keeps the expired restore points' packs and says until when; a prune after it deletes them"

# the secret key: nowhere but the credentials file
secret=$VB_RGW_SECRET_KEY
[[ -n $(ls "$TEST_DIR/wire") ]] || fail "no wire trace was written"
grep -rqF "s3://vbak-lab/site" "$TEST_DIR/wire" || fail "the wire trace lacks the repository URL"
! grep -rqF "$secret" "$TEST_DIR/wire" || fail "the secret key went over the wire"
! grep -rlF "$secret" "$SITE" || fail "the secret key is in a file of the site (logs, catalog, confs)"
ps -eo args >"$TEST_DIR/ps.txt"
! grep -qF "$secret" "$TEST_DIR/ps.txt" || fail "the secret key is in a process's arguments"
pass "S3: the secret key is in no log, catalog, configuration, process argument or wire message"
