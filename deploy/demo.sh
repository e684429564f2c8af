#!/usr/bin/env bash
# The vbak demo: installs what it needs, builds, and runs the main job on a lab site in a
# temporary directory — full and incremental backups of every VM, restores checked byte for
# byte, the restore rules around snapshots, and the transport decisions. Leaves nothing running.
set -euo pipefail
cd "$(dirname "$0")/.."

./deploy/install-deps.sh >/dev/null
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
VBAK="$PWD/build/bin/vbak"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/vbak-demo.XXXXXX")
SITE="$WORK/site"
trap '"$VBAK" lab down "$SITE" >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
export VBAK_CONFIG="$SITE/vbak.conf"
t0=$SECONDS
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
summary=()

step "create a lab site: hosts, VMFS/NFS/vsan/VVOL datastores, VMs, FCDs, 4 proxies"
"$VBAK" lab create "$SITE" --proxies 4 --heartbeat-ms 500
"$VBAK" lab show "$SITE" | sed -n '1,30p'

step "start the disk servers, the coordinator and 4 agents (they enroll with the site token)"
"$VBAK" lab up "$SITE"
for _ in $(seq 100); do
  [[ $("$VBAK" agents --json | jq '[.[] | select(.state == "online")] | length') == 4 ]] && break
  sleep 0.1
done
"$VBAK" agents

# keep the content of every disk as it is now, to check the restore against (`lab cat`: a disk
# with snapshots is a chain of files, redirect-on-write as on VMware)
save() {
  mkdir -p "$WORK/at-$1"
  "$VBAK" lab show "$SITE" --json |
    jq -r '(.vms[] | .name as $vm | .disks[] | [$vm, .key]), (.fcds[] | [.name, .key]) | @tsv' |
    while IFS=$'\t' read -r vm key; do "$VBAK" lab cat "$SITE" "$vm" "$key" "$WORK/at-$1/$vm-$key.raw"; done
}

step "full backup of every VM and First Class Disk"
save full
fcds=$("$VBAK" lab show "$SITE" --json | jq -r '[.fcds[] | "--fcd", .name] | join(" ")')
"$VBAK" backup --all $fcds --wait
summary+=("full backup of $("$VBAK" lab show "$SITE" --json | jq '(.vms + .fcds) | length') VMs and FCDs: succeeded")

step "the VMs change: blocks overwritten in vm-vsan-01 and vm-vmfs-01, change tracking reset on vm-vvol-01"
"$VBAK" lab mutate "$SITE" vm-vsan-01 --percent 5 | cut -c1-100
"$VBAK" lab mutate "$SITE" vm-vmfs-01 --percent 3 | cut -c1-100
"$VBAK" lab cbt-reset "$SITE" vm-vvol-01
"$VBAK" lab mutate "$SITE" vm-guest-01 --file /etc/motd --content "motd as of the second backup"
save incr

step "second backup: incremental where the change IDs are valid, full where tracking was reset"
"$VBAK" backup --all --wait
summary+=("incremental backup: succeeded (vm-vvol-01 full after its CBT reset)")

step "restore points"
"$VBAK" restore-points

step "restore vm-vsan-01's incremental restore point to a directory and compare every byte"
rp=$("$VBAK" restore-points vm-vsan-01 --json | jq '.[-1].id')
"$VBAK" restore "$rp" --to-dir "$WORK/restored" --wait
"$VBAK" restore-point show "$rp"
for f in "$WORK"/restored/*.raw; do
  cmp "$f" "$WORK/at-incr/$(basename "$f")"
  echo "  $(basename "$f"): identical to the disk at the backup ($(du -h "$f" | cut -f1) on disk, sparse)"
done
summary+=("restore of restore point $rp (incremental, vm-vsan-01): every byte identical")

step "verify the restore point: every chunk re-read and re-hashed"
"$VBAK" verify "$rp"

step "restore into vm-nfs-01, which has a pre-existing snapshot: refused"
rp_nfs=$("$VBAK" restore-points vm-nfs-01 --json | jq '.[-1].id')
if "$VBAK" restore "$rp_nfs" --to-vm --wait; then echo "demo: this restore should have been refused" >&2; exit 1; fi
step "the same, asking to delete the snapshots first: allowed"
"$VBAK" restore "$rp_nfs" --to-vm --delete-snapshots --wait
summary+=("restore into a VM with a snapshot: refused, then done with --delete-snapshots")

step "why each agent reaches a vSAN VM the way it does"
"$VBAK" explain vm-vsan-01 | sed -n '1,24p'
step "and a linked clone on a vVol datastore"
"$VBAK" explain vm-vvol-clone-01 --agent agent-2

step "the jobs"
"$VBAK" jobs

step "get one file back from vm-guest-01's newest restore point (libguestfs reads its ext4)"
rp_guest=$("$VBAK" restore-points vm-guest-01 --json | jq '.[-1].id')
"$VBAK" files "$rp_guest" get /etc/motd --to "$WORK"
echo "  /etc/motd: $(cat "$WORK/motd")"
[[ $(cat "$WORK/motd") == "motd as of the second backup" ]]
summary+=("file-level restore: /etc/motd of restore point $rp_guest (vm-guest-01) as the guest held it")

step "stop everything"
"$VBAK" lab down "$SITE"

printf '\n\033[1m== summary (%d s)\033[0m\n' $((SECONDS - t0))
for line in "${summary[@]}"; do echo "  - $line"; done
echo "  - transports chosen per disk x agent by the policy (vbak explain); nothing left running"
