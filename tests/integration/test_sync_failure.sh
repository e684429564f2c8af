#!/usr/bin/env bash
# A repository sync that fails (the kernel reports a writeback error once: a later sync of the
# same descriptor may pass over lost pages): the backup that saw it fails and names it, no
# restore point is made of it, and the next backup succeeds because the coordinator and the
# agent open the repository again instead of committing through the handle that saw the error.
# The daemons' first repository sync fails (VBAK_TEST_STORE_SYNC_FAIL_PROCESS=1: per process,
# whichever handle makes it); format 1, whose commits sync the repository directory.
source "$(dirname "$0")/lib.sh"

"$VBAK" lab create "$SITE" --vms 1 --proxies 1 --disk-size 4M --format 1 --heartbeat-ms 200 \
  >/dev/null
printf '%s\n' 'max_attempts = "3"' 'retry_max_delay_ms = "500"' >>"$SITE/coordinator.conf"
VBAK_TEST_STORE_SYNC_FAIL_PROCESS=1 "$VBAK" lab up "$SITE" >/dev/null
wait_until 10 "the agent online" has_count online 1
vm=$(site_json | jq -r '.vms[0].name')

job1=$(backup_json "$vm" --full) && fail "the backup whose sync failed succeeded: $job1"
[[ $(jq -r .state <<<"$job1") == failed ]] || fail "first backup: $job1"
jq -r '.vm_details[0].error // .error' <<<"$job1" | grep -q 'sync failed' ||
  fail "the failed sync is not named: $job1"
[[ $("$VBAK" restore-points --json | jq length) == 0 ]] || fail "a restore point of the failed backup"
pass "a failed repository sync fails its backup, named, with no restore point"

job2=$(backup_json "$vm") || fail "the next backup failed: $job2"
[[ $(jq -r .state <<<"$job2") == succeeded ]] || fail "second backup: $job2"
grep -q 'repository_reopened' "$SITE"/log/coordinator*.log ||
  fail "the coordinator did not open the repository again"
rp=$("$VBAK" restore-points --json | jq '.[-1].id')
"$VBAK" verify "$rp" --json | jq -e '.ok == true and .bad_chunks == 0' >/dev/null ||
  fail "the restore point after the failure does not verify"
pass "the next backup opens the repository again and succeeds; its restore point verifies"
