#!/usr/bin/env bash
# A format 2 repository (chunks in packs, found through index objects) under the real
# coordinator and agents, encrypted: full and incremental backups restore byte-identical, verify
# passes, a second full of unchanged disks stores nothing, the repository holds a handful of
# objects instead of a file per chunk, and prune says plainly that it cannot collect packs yet.
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
vms=$(site_json | jq -r '.vms[].name')

save_content full
job1=$(backup_json --all)
[[ $(jq -r .state <<<"$job1") == succeeded ]] || fail "full backup: $job1"
for vm in $vms; do "$VBAK" lab mutate "$SITE" "$vm" --percent 5 >/dev/null; done
save_content incr
job2=$(backup_json --all)
[[ $(jq -r .state <<<"$job2") == succeeded ]] || fail "incremental backup: $job2"
for vm in $vms; do
  [[ $(jq -r --arg vm "$vm" '.vm_details[] | select(.vm == $vm) | .mode' <<<"$job2") == incremental ]] \
    || fail "$vm: second backup not incremental"
  check_restore "$(rp_of "$job1" "$vm")" full
  check_restore "$(rp_of "$job2" "$vm")" incr
  "$VBAK" verify "$(rp_of "$job2" "$vm")" >/dev/null || fail "verify of $vm's incremental"
done
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

# the chunk index lost: verify says the chunks are missing; repair-index rebuilds it from the
# packs' trailers alone, and the restore point verifies and restores byte-identical again
vm1=$(head -1 <<<"$vms")
rp=$(rp_of "$job2" "$vm1")
rm -f "$SITE/repo/index/"*
if out=$("$VBAK" verify "$rp" 2>&1); then fail "verify passed without a chunk index: $out"; fi
grep -Eq "disk [0-9]+ offset [0-9]+: .*is missing" <<<"$out" || fail "verify's words: $out"
out=$("$VBAK" repo repair-index "$SITE/repo") || fail "repair-index: $out"
grep -q "from $packs pack(s): $chunks chunk(s)" <<<"$out" || fail "repair-index said: $out"
"$VBAK" verify "$rp" >/dev/null || fail "verify after repair-index"
check_restore "$rp" incr
pass "an index deleted: verify names the missing chunks, repair-index rebuilds it from the packs"

# a pack truncated: repair-index says its chunks are lost, and verify names the damage
pack=$(find "$SITE/repo/packs" -type f | sort | head -1)
truncate -s 1000 "$pack"
if out=$("$VBAK" repo repair-index "$SITE/repo" 2>&1); then fail "repair-index of a truncated pack: $out"; fi
grep -q "1 pack(s) have a damaged or missing trailer: their chunks are lost" <<<"$out" \
  || fail "repair-index said: $out"
bad=0
for vm in $vms; do
  for job in "$job1" "$job2"; do
    if ! out=$("$VBAK" verify "$(rp_of "$job" "$vm")" 2>&1); then
      bad=$((bad + 1))
      grep -Eq "disk [0-9]+ offset [0-9]+: " <<<"$out" || fail "verify does not name disk and offset: $out"
    fi
  done
done
((bad >= 1)) || fail "no restore point failed verify after a pack was truncated"
pass "a pack truncated: repair-index says what is lost, verify names the damage in $bad restore point(s)"

if out=$("$VBAK" prune --keep-last 1 2>&1); then fail "prune on format 2 claimed success: $out"; fi
grep -q "not implemented yet; nothing was removed" <<<"$out" || fail "prune's message: $out"
pass "prune on format 2 says it cannot collect packs yet"
