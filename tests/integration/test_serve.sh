#!/usr/bin/env bash
# vbak serve: a restore point's disks over NBD, read straight from the repository by the
# project's nbdkit plugin. A full and an incremental restore point read back with nbdcopy equal
# the disks at their backups, holes show in nbdinfo --map; a Unix socket, IPv4, and IPv6 with
# TLS-PSK (a wrong key refused); --overlay takes writes that read back and vanish at stop, the
# restore point verifying clean afterwards; --background returns once the exports answer and
# SIGTERM stops it; vbak serves and vbak status show the serve; prune keeps a served restore
# point and removes it once the serve stopped; a killed serve's lease expires; a corrupt chunk is
# an EIO and a log line naming disk and offset. Then the same over an encrypted repository.
source "$(dirname "$0")/lib.sh"

"$VBAK" lab create "$SITE" --vms 1 --proxies 1 --disk-size 4M >/dev/null
echo 'serve_lease_s = "2"' >>"$SITE/coordinator.conf"
vm=vm-vmfs-01
disk_file() { site_json | jq -r --arg vm "$vm" --arg k "$1" '.vms[] | select(.name == $vm)
  | .disks[] | select(.key == $k) | .file_uri'; }
# a hole of 1 MiB in the middle of disk 2000 (whole chunks: the index marks them as holes)
dd if=/dev/zero of="$(disk_file 2000)" bs=1M seek=1 count=1 conv=notrunc status=none
fallocate -p -o 1048576 -l 1048576 "$(disk_file 2000)" 2>/dev/null || true
"$VBAK" lab up "$SITE" >/dev/null
wait_until 10 "an agent online" has_count online 1

save_content full
job=$(backup_json "$vm")
rp1=$(rp_of "$job" "$vm")
"$VBAK" lab mutate "$SITE" "$vm" --percent 10 >/dev/null
save_content incr
job=$(backup_json "$vm")
rp2=$(rp_of "$job" "$vm")
[[ $("$VBAK" restore-point show "$rp2" --json | jq -r .kind) == incremental ]] || fail "rp $rp2 is not an incremental"
keys=$(site_json | jq -r --arg vm "$vm" '.vms[] | select(.name == $vm) | .disks[].key')

# serve_bg RP ARGS...: a background serve with its JSON output in $TEST_DIR/serve.json
serve_bg() {
  local rp=$1; shift
  "$VBAK" serve "$rp" --background --pid-file "$TEST_DIR/serve.pid" --json "$@" >"$TEST_DIR/serve.json" \
    || fail "vbak serve $rp $*: $(cat "$TEST_DIR/serve.json")"
}
serve_stop() {
  local pid; pid=$(cat "$TEST_DIR/serve.pid")
  kill -TERM "$pid"
  wait_until 10 "the serve $pid stops" bash -c "! kill -0 $pid"
}
uri_of() { jq -r --arg k "$1" '.exports[] | select(.disk == $k) | .uri' "$TEST_DIR/serve.json"; }

# ---- full and incremental over a Unix socket: byte-identical, holes mapped
for pair in "$rp1 full" "$rp2 incr"; do
  read -r rp tag <<<"$pair"
  serve_bg "$rp"
  for k in $keys; do
    nbdcopy "$(uri_of "$k")" "$TEST_DIR/copy.raw" || fail "nbdcopy of rp $rp disk $k"
    cmp "$TEST_DIR/copy.raw" "$TEST_DIR/expect/$tag/$vm-$k.raw" || fail "rp $rp disk $k differs from the disk at its backup"
  done
  nbdinfo --map "$(uri_of 2000)" >"$TEST_DIR/map"
  [[ $tag == incr ]] || awk '$1 <= 1048576 && $1 + $2 >= 2097152 && $3 == 3 { found = 1 } END { exit !found }' "$TEST_DIR/map" \
    || fail "nbdinfo --map shows no hole over [1 MiB, 2 MiB): $(cat "$TEST_DIR/map")"
  serve_stop
done
pass "a full and an incremental restore point served over a Unix socket read back byte-identical; the hole shows in nbdinfo --map"
