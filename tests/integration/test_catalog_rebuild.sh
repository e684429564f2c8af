#!/usr/bin/env bash
# Disaster recovery from the repository alone: every committed restore point has a manifest in
# the repository; with the coordinator stopped and its catalog deleted, `vbak catalog rebuild`
# recreates the restore points, their chain and change IDs; the coordinator started on the rebuilt
# catalog lists the same restore points, restores one byte-identical, and backs the VM up as an
# incremental of the rebuilt chain. Prune removes a pruned restore point's manifest.
source "$(dirname "$0")/lib.sh"

"$VBAK" lab create "$SITE" --vms 2 --proxies 1 --disk-size 8M --heartbeat-ms 500 >/dev/null
"$VBAK" lab up "$SITE" >/dev/null
wait_until 10 "one agent online" has_count online 1
vms=$(site_json | jq -r '.vms[].name')
vm1=$(head -1 <<<"$vms")

job1=$(backup_json --all)
[[ $(jq -r .state <<<"$job1") == succeeded ]] || fail "full backup: $job1"
"$VBAK" lab mutate "$SITE" "$vm1" --percent 5 >/dev/null
save_content incr
job2=$(backup_json "$vm1")
[[ $(jq -r .state <<<"$job2") == succeeded ]] || fail "incremental backup: $job2"
rp1=$(rp_of "$job1" "$vm1") rp2=$(rp_of "$job2" "$vm1")

m="$SITE/repo/manifests/rp$rp2.json"
[[ -f $m ]] || fail "no manifest for restore point $rp2: $(ls "$SITE/repo")"
[[ $(jq -r '[.format, .version, .vm, .kind, .parent, .provider] | @tsv' "$m") == \
   "$(printf 'vbak-manifest\t1\t%s\tincremental\t%s\tlab' "$vm1" "$rp1")" ]] || fail "manifest: $(cat "$m")"
show=$("$VBAK" restore-point show "$rp2" --json)
[[ $(jq -c '[.disks[] | {key, change_id, index}]' <<<"$show") == \
   "$(jq -c '[.disks[] | {key, change_id, index}]' "$m")" ]] || fail "manifest disks differ: $(cat "$m") vs $show"
pass "each restore point has a manifest naming its VM, kind, parent, disks, change IDs and indexes"

# after each job the coordinator stores a consistent copy of its catalog in the repository
copies_hold() {
  local c
  c=$(ls "$SITE/repo/catalog/"catalog-*.db 2>/dev/null | sort | tail -1)
  [[ -n $c ]] && [[ $(sqlite3 "$c" "select group_concat(id) from (select id from restore_points
    where state = 'complete' order by id)") == "$1" ]]
}
wait_until 10 "a catalog copy in the repository holding restore points $rp1 and $rp2" \
  copies_hold "$(printf '%s\n' "$(rp_of "$job1" "$(sed -n 2p <<<"$vms")")" "$rp1" "$rp2" | sort -n | paste -sd,)"
[[ $(stat -c %a "$(ls "$SITE/repo/catalog/"*.db | tail -1)") == 600 ]] || fail "catalog copy mode"
pass "after each job a consistent catalog copy is in the repository (opens with sqlite3, mode 0600)"

fields='[.[] | {id, vm, kind, parent, created, disks: ([.disks[]? | {key, change_id}])}] | sort_by(.id)'
before=$("$VBAK" restore-points --json | jq -c "$fields")
[[ $(jq length <<<"$before") == 3 ]] || fail "expected 3 restore points: $before"

"$VBAK" lab down "$SITE" >/dev/null
rm -f "$SITE/catalog.db" "$SITE/catalog.db-wal" "$SITE/catalog.db-shm"
out=$("$VBAK" catalog rebuild --repo "$SITE/repo" --catalog "$SITE/catalog.db") || fail "rebuild: $out"
grep -q "rebuilt 3 restore point(s) from 3 manifest(s)" <<<"$out" || fail "rebuild said: $out"
if out=$("$VBAK" catalog rebuild --repo "$SITE/repo" --catalog "$SITE/catalog.db" 2>&1); then
  fail "rebuild overwrote a catalog: $out"
fi
grep -q "exists: refusing to overwrite" <<<"$out" || fail "rebuild over a catalog said: $out"
pass "catalog rebuild from the repository alone; it refuses to overwrite a catalog"

"$VBAK" lab up "$SITE" >/dev/null
wait_until 20 "the agent online with the rebuilt catalog" has_count online 1
after=$("$VBAK" restore-points --json | jq -c "$fields")
[[ $after == "$before" ]] || fail "restore points differ after rebuild: $before vs $after"
check_restore "$rp2" incr
pass "the rebuilt catalog lists the same restore points and restores byte-identical"

"$VBAK" lab mutate "$SITE" "$vm1" --percent 5 >/dev/null
save_content incr2
job3=$(backup_json "$vm1")
[[ $(jq -r .state <<<"$job3") == succeeded ]] || fail "backup after rebuild: $job3"
[[ $(jq -r --arg vm "$vm1" '.vm_details[] | select(.vm == $vm) | .mode' <<<"$job3") == incremental ]] \
  || fail "the backup after rebuild was not incremental: $job3"
rp3=$(rp_of "$job3" "$vm1")
[[ $rp3 -gt $rp2 ]] || fail "restore point id $rp3 reused"
[[ $("$VBAK" restore-point show "$rp3" --json | jq -r .parent) == "$rp2" ]] || fail "parent of $rp3"
check_restore "$rp3" incr2
pass "the next backup is an incremental of the rebuilt chain and restores byte-identical"

"$VBAK" prune --keep-last 1 >/dev/null || fail "prune"
[[ ! -e $SITE/repo/manifests/rp$rp1.json && ! -e $SITE/repo/manifests/rp$rp2.json ]] \
  || fail "pruned restore points kept their manifests: $(ls "$SITE/repo/manifests")"
[[ -f $SITE/repo/manifests/rp$rp3.json ]] || fail "prune removed a kept restore point's manifest"
pass "prune removes the manifests of the restore points it deletes"
