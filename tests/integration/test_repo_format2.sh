#!/usr/bin/env bash
# A format 2 repository (chunks in packs, found through index objects) under the real
# coordinator and agents, encrypted: full and incremental backups restore byte-identical, verify
# passes, a second full of unchanged disks stores nothing, the repository holds a handful of
# objects instead of a file per chunk; prune deletes and repacks packs (--dry-run says what it
# would do) and every remaining restore point restores byte-identical; a prune loop while a backup
# runs loses nothing; a flipped byte in a pack is named and quarantined by verify and stored again
# by the next backup; a damaged pack stops GC.
source "$(dirname "$0")/lib.sh"

"$VBAK" lab create "$SITE" --vms 2 --proxies 2 --disk-size 16M --encrypt --heartbeat-ms 500 \
  >/dev/null
cs=$(conf_value "$SITE/repo/config" chunk_size)
key=$(conf_value "$SITE/coordinator.conf" repository_key_file)
[[ -n $cs && -n $key ]] || fail "lab site without chunk size or key file"
rm -rf "$SITE/repo"
"$VBAK" repo init "$SITE/repo" --chunk-size "$cs" --encrypt "$key" --format 2 --pack-size 4M \
  | grep -q "format 2, packs of 4 MiB" || fail "repo init --format 2"
"$VBAK" lab up "$SITE" >/dev/null
wait_until 10 "two agents online" has_count online 2
full_incremental_round
pass "format 2: full and incremental restore byte-identical and verify, encrypted"

# the repository describes its restore points: a catalog rebuilt from it alone lists the same
[[ $(ls "$SITE/repo/manifests" | wc -l) == 4 ]] || fail "manifests: $(ls "$SITE/repo/manifests")"
out=$("$VBAK" catalog rebuild --repo "$SITE/repo" --catalog "$TEST_DIR/rebuilt.db") \
  || fail "catalog rebuild of a format 2 repository: $out"
want=$("$VBAK" restore-points --json | jq -r '.[] | [.id, .vm, .kind, (.parent // 0)] | @tsv' | sort)
got=$(sqlite3 -separator $'\t' "$TEST_DIR/rebuilt.db" \
  "select id, vm, kind, coalesce(parent_id, 0) from restore_points where state = 'complete'" | sort)
[[ $got == "$want" ]] || fail "rebuilt catalog: $got, catalog: $want"
pass "format 2: the catalog rebuilt from the manifests has the same restore points and chains"

stats=$("$VBAK" repo stats "$SITE/repo" --json)
[[ $(jq -r .format_version <<<"$stats") == 2 ]] || fail "stats: $stats"
chunks=$(jq -r .chunks <<<"$stats") packs=$(jq -r .packs <<<"$stats")
files=$(find "$SITE/repo" -type f | wc -l)
[[ $chunks -gt 100 && $packs -ge 1 && $files -lt $((chunks / 4)) ]] \
  || fail "expected far fewer objects than chunks: $files files, $packs packs, $chunks chunks"
[[ -z $(find "$SITE/repo/chunks" -type f 2>/dev/null) ]] || fail "chunk files in a format 2 repository"
pass "format 2 stores $chunks chunks in $packs packs ($files objects in all)"

before=$(find "$SITE/repo/packs" -type f | wc -l)
job3=$("$VBAK" backup --all --full --wait --json 2>/dev/null || backup_json --all)
[[ $(jq -r .state <<<"$job3") == succeeded ]] || fail "third backup: $job3"
[[ $(find "$SITE/repo/packs" -type f | wc -l) == "$before" ]] \
  || fail "unchanged disks stored new packs"
pass "backing up unchanged disks again stores no pack"

# prune: job3 (a full of the same content as job2) is kept, job1 and job2 go; the chunks the
# mutation replaced are garbage in job1's packs, which --repack-below 99 rewrites. job3 freshened
# every pack it re-used a moment ago (GC spares what was used since the oldest running job, or
# since now): age them an hour, as if job3 had run long before
find "$SITE/repo/packs" -type f -exec touch -d '1 hour ago' {} +
packs_before=$(find "$SITE/repo/packs" -type f | wc -l)
dry=$("$VBAK" prune --keep-last 1 --repack-below 99 --dry-run --json) || fail "prune --dry-run: $dry"
would=$(jq '.gc.packs.deleted + .gc.packs.rewritten' <<<"$dry")
((would >= 1)) || fail "prune --dry-run finds no pack to rewrite: $dry"
[[ $(find "$SITE/repo/packs" -type f | wc -l) == "$packs_before" ]] || fail "a dry run changed packs"
"$VBAK" prune --keep-last 1 --repack-below 99 --dry-run | grep -Eq "^packs: [0-9]+ looked at; would delete [0-9]+ and rewrite [0-9]+, freeing about [0-9.]+ MiB" \
  || fail "prune --dry-run text: $("$VBAK" prune --keep-last 1 --repack-below 99 --dry-run | tail -2)"
pruned=$("$VBAK" prune --keep-last 1 --repack-below 99 --json) || fail "prune: $pruned"
[[ $(jq .removed <<<"$pruned") == $((2 * $(wc -w <<<"$vms"))) ]] || fail "prune removed: $pruned"
[[ $(jq '.gc.packs.deleted + .gc.packs.rewritten' <<<"$pruned") == "$would" ]] \
  || fail "prune did other than its dry run said ($would packs): $pruned"
freed=$(jq .gc.packs.bytes_freed <<<"$pruned")
((freed > 0)) || fail "prune freed nothing: $pruned"
[[ $(find "$SITE/repo/index" -type f | wc -l) == $(jq .gc.packs.index_objects_written <<<"$pruned") ]] \
  || fail "index objects not merged: $(ls "$SITE/repo/index") $pruned"
for vm in $vms; do
  "$VBAK" verify "$(rp_of "$job3" "$vm")" >/dev/null || fail "verify of $vm after prune"
  check_restore "$(rp_of "$job3" "$vm")" incr
done
pass "prune rewrote $would pack(s) as its dry run said, freed $freed bytes, merged the index; the rest restores byte-identical"

# prune in a loop while a backup runs: nothing the backup stores or re-uses is lost
for vm in $vms; do "$VBAK" lab mutate "$SITE" "$vm" --percent 5 >/dev/null; done
save_content incr2
backup_json --all >"$TEST_DIR/job4.json" 2>&1 &
backer=$!
loops=0
while kill -0 "$backer" 2>/dev/null; do
  "$VBAK" prune --keep-last 1 --repack-below 99 >/dev/null 2>"$TEST_DIR/prune.err" \
    || fail "prune during a backup: $(cat "$TEST_DIR/prune.err")"
  loops=$((loops + 1))
done
wait "$backer" || fail "backup during the prune loop: $(cat "$TEST_DIR/job4.json")"
job4=$(cat "$TEST_DIR/job4.json")
[[ $(jq -r .state <<<"$job4") == succeeded ]] || fail "backup during the prune loop: $job4"
"$VBAK" prune --keep-last 1 --repack-below 99 >/dev/null || fail "prune after the backup"
for vm in $vms; do
  "$VBAK" verify "$(rp_of "$job4" "$vm")" >/dev/null || fail "verify of $vm after the prune loop"
  check_restore "$(rp_of "$job4" "$vm")" incr2
done
pass "$loops prune(s) while a backup ran: its restore points verify and restore byte-identical"
stats=$("$VBAK" repo stats "$SITE/repo" --json)
chunks=$(jq -r .chunks <<<"$stats") packs=$(jq -r .packs <<<"$stats")

# the chunk index lost: verify says the chunks are missing; repair-index rebuilds it from the
# packs' trailers alone, and the restore point verifies and restores byte-identical again
vm1=$(head -1 <<<"$vms")
rp=$(rp_of "$job4" "$vm1")
rm -f "$SITE/repo/index/"*
if out=$("$VBAK" verify "$rp" 2>&1); then fail "verify passed without a chunk index: $out"; fi
grep -Eq "disk [0-9]+ offset [0-9]+: .*is missing" <<<"$out" || fail "verify's words: $out"
out=$("$VBAK" repo repair-index "$SITE/repo") || fail "repair-index: $out"
grep -q "from $packs pack(s): $chunks chunk(s)" <<<"$out" || fail "repair-index said: $out"
"$VBAK" verify "$rp" >/dev/null || fail "verify after repair-index"
check_restore "$rp" incr2
pass "an index deleted: verify names the missing chunks, repair-index rebuilds it from the packs"

# a flipped byte in a pack: verify names the bad chunks by disk and offset and quarantines the
# copies (records in quarantine/, private); verify then says they are in quarantine; the next
# backup (a full one: its parent failed verify) stores them again in new packs, and its restore
# point verifies clean and restores byte-identical
vm2=$(tail -1 <<<"$vms")
rp=$(rp_of "$job4" "$vm2")
find "$SITE/repo/packs" -type f -print0 | # the first chunk of every pack (a pack starts with one)
  while IFS= read -r -d '' p; do flip_byte "$p" 200; done
if out=$("$VBAK" verify "$rp" --json); then fail "verify missed a flipped byte in a pack"; fi
jq -e '.ok == false and .bad_chunks > 0 and .bad_chunks == (.bad | length) and
       all(.bad[]; (.offset | type) == "number" and .quarantined == true)' <<<"$out" >/dev/null \
  || fail "verify --json does not list and quarantine every bad chunk: $out"
qdir="$SITE/repo/quarantine"
[[ $(ls "$qdir" | wc -l) == $(jq '[.bad[].digest] | unique | length' <<<"$out") ]] \
  || fail "quarantine/ holds $(ls "$qdir" | wc -l) record(s) for $out"
[[ $(stat -c %a "$qdir") == 700 && $(stat -c %a "$qdir/$(ls "$qdir" | head -1)") == 600 ]] \
  || fail "quarantine is not private"
if out=$("$VBAK" verify "$rp"); then fail "verify of quarantined chunks passed"; fi
grep -Eq "^  disk [0-9]+ offset [0-9]+: the chunk is in quarantine" <<<"$out" \
  || fail "verify does not say the chunk is in quarantine: $out"
packs_before=$(find "$SITE/repo/packs" -type f | wc -l)
job=$(backup_json "$vm2")
[[ $(jq -r .state <<<"$job") == succeeded ]] || fail "backup after verify: $job"
[[ $(jq -r '.vm_details[0].mode' <<<"$job") == full ]] || fail "the backup after a failed verify was not full: $job"
(($(find "$SITE/repo/packs" -type f | wc -l) > packs_before)) || fail "the quarantined chunks were not stored again"
"$VBAK" verify "$(rp_of "$job" "$vm2")" >"$TEST_DIR/out" \
  || fail "the restore point after the repair does not verify: $(cat "$TEST_DIR/out")"
check_restore "$(rp_of "$job" "$vm2")" incr2
pass "a flipped byte in a pack: verify names and quarantines the bad copies; the next backup stores them again and verifies clean"
packs=$(find "$SITE/repo/packs" -type f | wc -l)

out=$("$VBAK" verify --repo "$SITE/repo") || fail "verify --repo of a sound repository: $out"
grep -Eq "^checked [1-9][0-9]* index object\(s\) and $packs pack\(s\) listing [0-9]+ chunk\(s\): 0 damaged$" <<<"$out" \
  || fail "verify --repo said: $out"

# a pack truncated: repair-index says its chunks are lost, and verify names the damage
pack=$(find "$SITE/repo/packs" -type f | sort | head -1)
truncate -s 1000 "$pack"
if out=$("$VBAK" repo repair-index "$SITE/repo" 2>&1); then fail "repair-index of a truncated pack: $out"; fi
grep -q "1 pack(s) have a damaged or missing trailer: their chunks are lost" <<<"$out" \
  || fail "repair-index said: $out"
bad=0
for vm in $vms; do
  for job in "$job4"; do
    if ! out=$("$VBAK" verify "$(rp_of "$job" "$vm")" 2>&1); then
      bad=$((bad + 1))
      grep -Eq "disk [0-9]+ offset [0-9]+: " <<<"$out" || fail "verify does not name disk and offset: $out"
    fi
  done
done
((bad >= 1)) || fail "no restore point failed verify after a pack was truncated"
rel=${pack#"$SITE/repo/"}
if out=$("$VBAK" verify --repo "$SITE/repo" 2>&1); then fail "verify --repo passed with a truncated pack: $out"; fi
grep -q "^damaged: $rel: " <<<"$out" || fail "verify --repo does not name $rel: $out"
grep -q ": 1 damaged$" <<<"$out" || fail "verify --repo count: $out"
pass "a pack truncated: repair-index says what is lost, verify names the damage in $bad restore point(s), verify --repo names the pack"

packs=$(find "$SITE/repo/packs" -type f | wc -l)
if out=$("$VBAK" prune --keep-last 1 2>&1); then fail "prune with a truncated pack claimed success: $out"; fi
grep -q "pack .* is damaged (run vbak verify --repo); nothing removed" <<<"$out" || fail "prune's message: $out"
[[ $(find "$SITE/repo/packs" -type f | wc -l) == "$packs" ]] || fail "GC removed packs beside a damaged one"
pass "a damaged pack stops GC with its name, and nothing is removed"

# an index object damaged: verify --repo names it beside the truncated pack
idx=$(find "$SITE/repo/index" -type f | sort | head -1)
flip_byte "$idx" 20
if out=$("$VBAK" verify --repo "$SITE/repo" --json); then fail "verify --repo passed with a damaged index object: $out"; fi
[[ $(jq -r --arg o "${idx#"$SITE/repo/"}" '.damaged[] | select(.object == $o) | .problem' <<<"$out") == *"checksum mismatch"* ]] \
  || fail "verify --repo --json does not name the index object: $out"
[[ $(jq '.damaged | length' <<<"$out") == 2 ]] || fail "verify --repo --json: $out"
pass "an index object damaged: verify --repo names it and the truncated pack"
