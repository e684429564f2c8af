#!/usr/bin/env bash
# vbak serve: a restore point's disks over NBD, read straight from the repository by the
# project's nbdkit plugin. Usage errors exit 2, missing restore points and disks 1. A full and an incremental restore point read back with nbdcopy equal
# the disks at their backups, holes show in nbdinfo --map; a Unix socket, IPv4, and IPv6 with
# TLS-PSK (a wrong key refused); --overlay takes writes that read back and vanish at stop, the
# restore point verifying clean afterwards; --background returns once the exports answer and
# SIGTERM stops it; vbak serves and vbak status show the serve; prune keeps a served restore
# point and removes it once the serve stopped; a killed serve's lease expires; a corrupt chunk is
# an EIO and a log line naming disk and offset. Then the same over an encrypted repository.
source "$(dirname "$0")/lib.sh"
# serves make their run directory (default socket, nbdkit's pid file) and the overlay under
# TMPDIR: here, so that a serve killed on purpose leaves nothing behind
export TMPDIR="$TEST_DIR/tmp"
mkdir -p "$TMPDIR"

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

# ---- usage errors (exit status 2) and a restore point or disk that does not exist (1)
usage() { local rc=0; "$VBAK" serve "$@" >/dev/null 2>"$TEST_DIR/usage.err" || rc=$?; echo "$rc"; }
[[ $(usage "$rp1" --background) == 2 ]] || fail "--background without --pid-file: $(cat "$TEST_DIR/usage.err")"
[[ $(usage "$rp1" --listen 127.0.0.1:1 --socket "$TEST_DIR/x.sock") == 2 ]] || fail "--listen with --socket"
[[ $(usage "$rp1" --tls-psk "$SITE/tls/psk.keys" --tls-certificates "$SITE/tls/server") == 2 ]] || fail "two TLS modes"
[[ $(usage 999999 --socket "$TEST_DIR/x.sock") == 1 ]] && grep -q "restore point 999999 does not exist" "$TEST_DIR/usage.err" \
  || fail "a missing restore point: $(cat "$TEST_DIR/usage.err")"
[[ $(usage "$rp1" --disk 7777 --socket "$TEST_DIR/x.sock") == 1 ]] && grep -q "has no disk '7777'" "$TEST_DIR/usage.err" \
  || fail "a missing disk: $(cat "$TEST_DIR/usage.err")"
[[ $(usage "$rp1" --overlay --socket "$TEST_DIR/x.sock") == 1 ]] && grep -q -- "--overlay serves one" "$TEST_DIR/usage.err" \
  || fail "--overlay of two disks: $(cat "$TEST_DIR/usage.err")"
[[ $("$VBAK" serves --json | jq length) == 0 ]] || fail "a refused serve left a lease: $("$VBAK" serves --json)"
pass "usage errors exit 2; a missing restore point or disk, or an overlay of two disks, exit 1 and leave no lease"

# ---- IPv4, and IPv6 with TLS-PSK (read with vbak disk cat: libnbd 1.14 cannot do TLS to an IPv6
# literal itself); a wrong key is refused
port4=$(free_port)
serve_bg "$rp2" --listen "127.0.0.1:$port4" --disk 2001
[[ $(jq -r '.exports | length' "$TEST_DIR/serve.json") == 1 ]] || fail "--disk 2001 served more: $(cat "$TEST_DIR/serve.json")"
[[ $(uri_of 2001) == "nbd://127.0.0.1:$port4/2001" ]] || fail "IPv4 URI: $(uri_of 2001)"
nbdcopy "$(uri_of 2001)" "$TEST_DIR/copy.raw" && cmp "$TEST_DIR/copy.raw" "$TEST_DIR/expect/incr/$vm-2001.raw" \
  || fail "rp $rp2 disk 2001 over IPv4 differs"
serve_stop
port6=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET6); s.bind(("::1", 0)); print(s.getsockname()[1])')
psk="$SITE/tls/psk.keys"
serve_bg "$rp1" --listen "[::1]:$port6" --tls-psk "$psk"
user=$(cut -d: -f1 "$psk" | head -1)
[[ $(uri_of 2000) == "nbds://$user@[::1]:$port6/2000?tls-psk-file=$psk" ]] || fail "IPv6 PSK URI: $(uri_of 2000)"
for k in $keys; do
  rm -f "$TEST_DIR/copy.raw"
  "$VBAK" disk cat "$(uri_of "$k")" --out "$TEST_DIR/copy.raw" >/dev/null || fail "disk cat over IPv6 TLS-PSK"
  cmp "$TEST_DIR/copy.raw" "$TEST_DIR/expect/full/$vm-$k.raw" || fail "rp $rp1 disk $k over IPv6 TLS-PSK differs"
done
printf '%s:%s\n' "$user" "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$TEST_DIR/wrong.keys"
chmod 600 "$TEST_DIR/wrong.keys"
"$VBAK" disk cat "nbds://$user@[::1]:$port6/2000?tls-psk-file=$TEST_DIR/wrong.keys" --out "$TEST_DIR/wrong.raw" \
  >/dev/null 2>&1 && fail "a wrong PSK was accepted"
serve_stop
pass "IPv4 and IPv6 with TLS-PSK serve byte-identical disks; a wrong key is refused"

# ---- --overlay: writes read back, and are gone after a stop; the restore point verifies clean
s=$TEST_DIR/ov.sock
serve_bg "$rp1" --socket "$s" --disk 2000 --overlay
head -c 65536 /dev/urandom >"$TEST_DIR/patch"
qemu-io -f raw -c "write -P 171 1048576 65536" "nbd+unix:///2000?socket=$s" >/dev/null || fail "qemu-io write through the overlay"
nbdcopy "$(uri_of 2000)" "$TEST_DIR/copy.raw"
cmp -s "$TEST_DIR/copy.raw" "$TEST_DIR/expect/full/$vm-2000.raw" && fail "the overlay write does not show"
[[ $(dd if="$TEST_DIR/copy.raw" bs=64k skip=16 count=1 status=none | tr -d '\253' | wc -c) == 0 ]] \
  || fail "the overlay does not read back what was written"
cmp -s <(head -c 1048576 "$TEST_DIR/copy.raw") <(head -c 1048576 "$TEST_DIR/expect/full/$vm-2000.raw") \
  || fail "the overlay changed bytes it was not given"
serve_stop
serve_bg "$rp1" --socket "$s" --disk 2000
nbdcopy "$(uri_of 2000)" "$TEST_DIR/copy.raw"
cmp "$TEST_DIR/copy.raw" "$TEST_DIR/expect/full/$vm-2000.raw" || fail "the overlay's writes outlived its serve"
qemu-io -f raw -c "write -P 171 0 4096" "nbd+unix:///2000?socket=$s" >/dev/null 2>&1 && fail "a serve without --overlay took a write"
serve_stop
"$VBAK" verify "$rp1" | grep -q "all chunks verified" || fail "rp $rp1 does not verify clean after the overlay"
pass "--overlay takes writes that read back and vanish at stop; without it the export is read-only; the restore point verifies clean"

# ---- the catalog knows: vbak serves, vbak status; prune keeps a served restore point; a serve
# killed without warning stops protecting it once its lease (2 s here) expires
serve_bg "$rp1"
pid=$(cat "$TEST_DIR/serve.pid")
sv=$("$VBAK" serves --json)
[[ $(jq -r --arg rp "$rp1" '[.[] | select(.rp == ($rp | tonumber))] | length' <<<"$sv") == 1 ]] || fail "vbak serves: $sv"
[[ $(jq -r '.[0].pid' <<<"$sv") == "$pid" && $(jq -r '.[0].exports[0].uri' <<<"$sv") == $(uri_of 2000) ]] \
  || fail "vbak serves shows another pid or URI: $sv"
"$VBAK" serves | grep -q "$vm" || fail "vbak serves (text): $("$VBAK" serves)"
"$VBAK" status | grep -q "serving: 1 restore point" || fail "vbak status: $("$VBAK" status)"
# the serve renews its lease: still listed once its first lease has run out
lease_end() { "$VBAK" serves --json | jq -r '.[0].lease_until // empty'; }
first=$(lease_end)
past_first() { [[ $(date -u +%Y-%m-%dT%H:%M:%SZ) > $first ]]; }
wait_until 10 "the first lease ($first) to run out" past_first
[[ $("$VBAK" serves --json | jq length) == 1 && $(lease_end) > $first ]] \
  || fail "the lease of a running serve was not renewed: $("$VBAK" serves --json)"
# a coordinator restart: the serve job is not ended by the restart's recovery, and the serve
# goes on renewing its lease (or takes a new one if it expired meanwhile)
cpid=$(cat "$SITE/run/coordinator.pid")
kill -TERM "$cpid"
wait_until 10 "the coordinator stops" bash -c "! kill -0 $cpid"
"$VBAK" lab up "$SITE" >/dev/null
leased() { [[ $("$VBAK" serves --json | jq -r '.[0].lease_until // empty') > $(date -u +%Y-%m-%dT%H:%M:%SZ) ]]; }
wait_until 15 "the serve to hold a lease again" leased
pr=$("$VBAK" prune --keep-last 1 --json) || fail "prune: $pr"
jq -e --arg rp "$rp1" '.restore_points[] | select(.id == ($rp | tonumber)) | .in_use[] | test("serve job")' \
  <<<"$pr" >/dev/null || fail "prune did not keep served rp $rp1: $pr"
"$VBAK" restore-point show "$rp1" >/dev/null || fail "prune removed served rp $rp1"
kill -KILL "$pid"
wait_until 10 "the killed serve's lease expires" bash -c "[[ \$('$VBAK' serves --json | jq length) == 0 ]]"
pr=$("$VBAK" prune --keep-last 1 --json) || fail "prune: $pr"
"$VBAK" restore-point show "$rp1" >/dev/null 2>&1 && fail "prune kept rp $rp1 after its serve's lease expired: $pr"
check_restore "$rp2" incr
pass "vbak serves and status show the serve; its lease is renewed, also across a coordinator restart; prune keeps a served restore point, and removes it once the lease of a killed serve expired"

# ---- a corrupt chunk: an EIO for the client and a log line naming disk and offset; the server
# keeps serving
f=$(find "$SITE/repo" \( -path '*/chunks/*' -o -path '*/packs/*' \) -type f | head -1)
[[ -n $f ]] || fail "no chunk or pack file in the repository"
printf '\xff\xff\xff\xff' | dd of="$f" bs=1 seek=$(($(stat -c %s "$f") / 2)) conv=notrunc status=none
serve_bg "$rp2"
failed=0
for k in $keys; do
  nbdcopy "$(uri_of "$k")" "$TEST_DIR/copy.raw" 2>/dev/null || failed=$((failed + 1))
done
((failed >= 1)) || fail "reading rp $rp2 with a corrupt chunk raised no error"
grep -Eq "vbrepo.*error: disk (2000|2001) offset [0-9]+: .*chunk" "$TEST_DIR/serve.pid.log" \
  || fail "no log line names the disk and offset of the bad chunk: $(tail -3 "$TEST_DIR/serve.pid.log")"
nbdinfo --size "$(uri_of 2000)" >/dev/null || fail "the server stopped after a bad chunk: $(cat "$TEST_DIR/serve.pid.log")"
serve_stop
pass "a corrupt chunk is an EIO and a log line naming disk and offset; the server keeps serving"

# ---- an encrypted format 2 repository: the same bytes through the key file on this host
"$VBAK" lab down "$SITE" >/dev/null
SITE="$TEST_DIR/site2"
export VBAK_CONFIG="$SITE/vbak.conf"
"$VBAK" lab create "$SITE" --vms 1 --proxies 1 --disk-size 4M --encrypt >/dev/null
cs=$(conf_value "$SITE/repo/config" chunk_size)
key=$(conf_value "$SITE/coordinator.conf" repository_key_file)
rm -rf "$SITE/repo"
"$VBAK" repo init "$SITE/repo" --chunk-size "$cs" --encrypt "$key" --format 2 --pack-size 4M >/dev/null
"$VBAK" lab up "$SITE" >/dev/null
wait_until 10 "an agent online" has_count online 1
rm -rf "$TEST_DIR/expect"
save_content full
rp=$(rp_of "$(backup_json "$vm")" "$vm")
"$VBAK" lab mutate "$SITE" "$vm" --percent 10 >/dev/null
save_content incr
rp2=$(rp_of "$(backup_json "$vm")" "$vm")
for pair in "$rp full" "$rp2 incr"; do
  read -r r tag <<<"$pair"
  serve_bg "$r"
  for k in $keys; do
    nbdcopy "$(uri_of "$k")" "$TEST_DIR/copy.raw" || fail "nbdcopy of encrypted rp $r disk $k"
    cmp "$TEST_DIR/copy.raw" "$TEST_DIR/expect/$tag/$vm-$k.raw" || fail "encrypted rp $r disk $k differs"
  done
  serve_stop
done
pass "a full and an incremental restore point of an encrypted format 2 repository serve byte-identical"
