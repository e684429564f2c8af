#!/usr/bin/env bash
# The lab site served over the network: every URI `lab show --json` prints gives exactly the bytes
# of the disk's image (IPv4 and IPv6, plain and TLS, the encrypted disk too); a wrong CA, a wrong
# PSK and a plain client on a TLS port are refused; `down` leaves no server running.
set -euo pipefail
T=${VB_TESTS_BIN:?}
LAB="$T/lab_site" # the site and its disk servers, without daemons
vbak_lab() { "${VB_BIN:?}/vbak" lab "$@"; }
PSK="$T/lab_nbd_psk"
base=${TMPDIR:-/tmp}
work=$(mktemp -d "$base/vbak-lab-serve.XXXXXX")
dir="$work/site with space"
mkdir "$dir"
cleanup() {
    "$LAB" down "$dir" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$LAB" create "$dir" --disk-size 2097152 --seed 11
vbak_lab show "$dir" --json > "$work/site.json"
jq -e '.datastores | map(.type) | (index("VMFS") and index("NFS") and index("vsan") and index("VVOL"))' \
    "$work/site.json" >/dev/null || fail "datastore types"
# Every disk carries the fields the contract names.
jq -e '[.vms[].disks[], .fcds[]] | all(has("key") and has("name") and has("datastore") and has("path")
       and has("capacity") and has("encrypted") and has("nbd_uri") and has("nbds_uri")
       and has("nbd_uri6") and has("nbds_uri6"))' "$work/site.json" >/dev/null || fail "disk fields"
jq -e '.proxies | length == 4 and all(has("name") and has("host") and has("datastore") and has("luns"))' \
    "$work/site.json" >/dev/null || fail "proxy fields"

"$LAB" up "$dir"
[ "$("$LAB" running "$dir")" = 6 ] || fail "six servers expected"
if "$LAB" up "$dir" 2>"$work/err"; then fail "a second up must be refused"; fi
grep -q "up already" "$work/err" || fail "second up: $(cat "$work/err")"
mapfile -t pids < <(cat "$dir"/run/*.pid)
[ "${#pids[@]}" = 6 ] || fail "expected 6 server pids, got ${#pids[@]}"

# All URIs, all disks.
reads=0
# A plain disk with snapshots is a chain of files (its live file is a delta): `lab cat` gives its
# content.
while IFS=$'\t' read -r vm key uri4 uri6 suri4 suri6; do
    file="$work/want.raw"
    vbak_lab cat "$dir" "$vm" "$key" "$file"
    for uri in "$uri4" "$uri6" "$suri4"; do
        [ "$uri" = null ] && continue
        nbdcopy "$uri" - | cmp -s - "$file" || fail "nbdcopy $uri differs from $file"
        reads=$((reads + 1))
    done
    "$PSK" "$suri6" | cmp -s - "$file" || fail "PSK read of $suri6 differs from $file"
    reads=$((reads + 1))
done < <(jq -r '(.vms[] | .name as $vm | .disks[] | [$vm, .key, .nbd_uri // "null", .nbd_uri6 // "null", .nbds_uri, .nbds_uri6]),
                (.fcds[] | [.name, .key, .nbd_uri // "null", .nbd_uri6 // "null", .nbds_uri, .nbds_uri6]) | @tsv' \
         "$work/site.json")
[ "$reads" -ge 40 ] || fail "only $reads reads"

# The encrypted FCD: served only over TLS, decrypted by the server, stored encrypted.
enc=$(jq -r '.fcds[] | select(.encrypted) | .export' "$work/site.json")
[ -n "$enc" ] || fail "no encrypted FCD"
[ "$(jq -r '.fcds[] | select(.encrypted) | .nbd_uri' "$work/site.json")" = null ] || fail "plain URI for encrypted disk"
[ "$(head -c 4 "$dir/disks-luks/$enc")" = LUKS ] || fail "the encrypted image is not LUKS"
if cmp -s "$dir/disks-luks/$enc" "$dir/disks-clear/$enc"; then fail "LUKS image equals plaintext"; fi
encsuri6=$(jq -r '.fcds[] | select(.encrypted) | .nbds_uri6' "$work/site.json")
[[ "$encsuri6" == nbds://vbak@\[::1\]:* ]] || fail "encrypted IPv6 URI: $encsuri6"

# A snapshot is its own export: frozen content.
snapuri="$(jq -r '.vms[] | select(.name=="vm-nfs-01") | .disks[0].nbd_uri' "$work/site.json")@snapshot-1"
snapfile="$(jq -r '.vms[] | select(.name=="vm-nfs-01") | .disks[0].file_uri' "$work/site.json")@snapshot-1"
nbdcopy "$snapuri" - | cmp -s - "$snapfile" || fail "snapshot export"
nbdcopy "${snapuri%@*}" - | cmp -s - "$snapfile" && fail "live disk equals its snapshot"
if nbdcopy "$work/want.raw" "$snapuri" 2>/dev/null; then fail "a snapshot export took a write"; fi

# Redirect-on-write through the server: a write (unaligned, so blocks are completed from the
# base) lands in the live disk only; the snapshot keeps its bytes; removing the snapshot keeps
# the written bytes.
nfsuri=${snapuri%@*}
nfskey=$(jq -r '.vms[] | select(.name=="vm-nfs-01") | .disks[0].key' "$work/site.json")
vbak_lab cat "$dir" vm-nfs-01 "$nfskey" "$work/nfs.raw"
cp "$snapfile" "$work/nfs-snap.raw"
head -c 70000 /dev/zero | tr '\0' '\253' > "$work/patch"
dd if="$work/patch" of="$work/nfs.raw" bs=1 seek=12345 conv=notrunc status=none
qemu-io -f raw -c "write -P 0xab 12345 70000" "$nfsuri" >/dev/null || fail "qemu-io write"
# a zero request: the delta must hold the zeros (a hole in it would show the base)
dd if=/dev/zero of="$work/nfs.raw" bs=1 seek=200000 count=70000 conv=notrunc status=none
qemu-io -f raw -c "write -z 200000 70000" "$nfsuri" >/dev/null || fail "qemu-io write -z"
nbdcopy "$nfsuri" - | cmp -s - "$work/nfs.raw" || fail "live disk after an NBD write"
cmp -s "$snapfile" "$work/nfs-snap.raw" || fail "an NBD write to the live disk changed the snapshot"
vbak_lab snapshot remove "$dir" vm-nfs-01 before-upgrade >/dev/null
nbdcopy "$nfsuri" - | cmp -s - "$work/nfs.raw" || fail "live disk after the snapshot's removal"
cmp -s "$(jq -r '.vms[] | select(.name=="vm-nfs-01") | .disks[0].file_uri' "$work/site.json")" "$work/nfs.raw" \
    || fail "the consolidated image is not the live content"
# with no snapshot left, a zero request on the raw image (a punched hole) reads as zeros
dd if=/dev/zero of="$work/nfs.raw" bs=1 seek=65536 count=131072 conv=notrunc status=none
qemu-io -f raw -c "write -z 65536 131072" "$nfsuri" >/dev/null || fail "qemu-io write -z (raw)"
nbdcopy "$nfsuri" - | cmp -s - "$work/nfs.raw" || fail "live disk after a zero request"

# Changes are served at once, encrypted disk included.
vbak_lab mutate "$dir" fcd-enc-01 --percent 25 >/dev/null
encfile=$(jq -r '.fcds[] | select(.encrypted) | .file_uri' "$work/site.json")
encsuri=$(jq -r '.fcds[] | select(.encrypted) | .nbds_uri' "$work/site.json")
nbdcopy "$encsuri" - | cmp -s - "$encfile" || fail "encrypted disk after mutate (IPv4)"
"$PSK" "$encsuri6" | cmp -s - "$encfile" || fail "encrypted disk after mutate (IPv6)"

# A restore writes the encrypted disk over NBDSSL: the next snapshot, and its file view, hold those
# bytes. A restore through the file view (HotAdd) is served over NBDSSL after the next operation.
cap=$(jq '.fcds[] | select(.encrypted) | .capacity' "$work/site.json")
head -c "$cap" /dev/urandom > "$work/restore.img"
nbdcopy "$work/restore.img" "$encsuri"
sid=$(vbak_lab snapshot create "$dir" fcd-enc-01 after-restore)
cmp -s "$work/restore.img" "$encfile@$sid" || fail "snapshot after an NBDSSL restore"
nbdcopy "${encsuri%%\?*}@$sid?${encsuri#*\?}" - | cmp -s - "$work/restore.img" || fail "snapshot export"
head -c 1048576 /dev/urandom > "$work/part.img"
dd if="$work/part.img" of="$encfile" conv=notrunc status=none
vbak_lab snapshot remove "$dir" fcd-enc-01 after-restore >/dev/null
sid=$(vbak_lab snapshot create "$dir" fcd-enc-01 after-hotadd)
"$PSK" "$encsuri6" | cmp -s - "$encfile" || fail "file-view restore not served"
cmp -s "$encfile" "$encfile@$sid" || fail "snapshot after a file-view restore"

# Refusals: a certificate from another CA, a wrong PSK, plain NBD on a TLS port.
mkdir "$work/otherca"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/otherca/k.pem" \
    -out "$work/otherca/ca-cert.pem" -days 1 -subj "/CN=other" 2>/dev/null
suri=$(jq -r '.vms[0].disks[0].nbds_uri' "$work/site.json")
if nbdinfo --size "${suri%%\?*}?tls-certificates=$work/otherca" 2>"$work/err"; then
    fail "a server certificate from the site CA was accepted with another CA"; fi
grep -qi "certificate" "$work/err" || fail "wrong CA: $(cat "$work/err")"
printf 'vbak:%s\n' "$(openssl rand -hex 32)" > "$work/bad.keys"
chmod 600 "$work/bad.keys"
suri6=$(jq -r '.vms[0].disks[0].nbds_uri6' "$work/site.json")
if "$PSK" "${suri6%%\?*}?tls-psk-file=$work/bad.keys" >/dev/null 2>"$work/err"; then
    fail "a wrong PSK was accepted"; fi
grep -qi "tls\|handshake" "$work/err" && ! grep -q "cannot parse\|bad address\|connect \[" "$work/err" \
    || fail "wrong PSK: not refused by the TLS handshake: $(cat "$work/err")"
tlsport=$(jq .network.tls_port "$work/site.json")
export0=$(jq -r '.vms[0].disks[0].export' "$work/site.json")
if nbdinfo --size "nbd://127.0.0.1:$tlsport/$export0" 2>/dev/null; then fail "plain NBD on the TLS port"; fi
if nbdinfo --size "nbd://[::1]:$tlsport/$export0" 2>/dev/null; then fail "plain NBD on the IPv6 TLS port"; fi

"$LAB" down "$dir"
[ "$("$LAB" running "$dir")" = 0 ] || fail "servers left running"
for p in "${pids[@]}"; do
    if [ -r "/proc/$p/stat" ]; then
        # the process may end between the check and the read: then it is gone, as it should be
        state=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | cut -d' ' -f1) || state=X
        [ -n "$state" ] || state=X
        [ "$state" = Z ] || [ "$state" = X ] || fail "nbdkit pid $p still running"
    fi
done
ls "$dir"/run/*.pid >/dev/null 2>&1 && fail "pid files left behind"
"$LAB" down "$dir" || fail "down twice"

# A rogue server on the site's TLS port: a certificate from another CA is refused with the site's
# URI, and one from a trusted CA but for another name is refused too (the IPv4 literal is checked
# against the certificate's names, not only its chain).
rogue="$work/rogue"
mkdir "$rogue"
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$rogue/server-key.pem" \
    -out "$work/rogue.csr" -subj "/CN=other.example" 2>/dev/null
printf 'subjectAltName = DNS:other.example\n' > "$work/rogue.ext"
openssl x509 -req -in "$work/rogue.csr" -CA "$work/otherca/ca-cert.pem" -CAkey "$work/otherca/k.pem" \
    -set_serial 7 -days 1 -extfile "$work/rogue.ext" -out "$rogue/server-cert.pem" 2>/dev/null
cp "$work/otherca/ca-cert.pem" "$rogue/ca-cert.pem"
nbdkit -P "$work/rogue.pid" -i 127.0.0.1 -p "$tlsport" --tls=require --tls-certificates="$rogue" \
    file dir="$dir/disks"
rogue_pid=$(cat "$work/rogue.pid")
stop_rogue() { kill "$rogue_pid" 2>/dev/null || true; }
trap 'stop_rogue; cleanup' EXIT
if nbdinfo --size "$suri" 2>"$work/err"; then fail "a rogue server was trusted"; fi
grep -qi "certificate" "$work/err" || fail "rogue server: $(cat "$work/err")"
if nbdinfo --size "${suri%%\?*}?tls-certificates=$work/otherca" 2>"$work/err"; then
    fail "a certificate for another name was accepted for 127.0.0.1"; fi
grep -qi "certificate" "$work/err" || fail "wrong name: $(cat "$work/err")"

# A stale pid file whose pid now belongs to another site's nbdkit (pids wrap at 32768): it is not
# counted as the site's server and `down` never signals it.
echo "$rogue_pid" > "$dir/run/nbds-ipv4.pid"
[ "$("$LAB" running "$dir")" = 0 ] || fail "another site's nbdkit counted as this site's"
"$LAB" down "$dir"
kill -0 "$rogue_pid" 2>/dev/null || fail "down stopped another site's nbdkit"

# The site's TLS port taken by someone else: up fails naming the server and the reason, and
# leaves nothing running.
if "$LAB" up "$dir" 2>"$work/err"; then fail "up succeeded on a taken port"; fi
grep -q "nbds-ipv4 on 127.0.0.1 port $tlsport" "$work/err" || fail "taken port, which server: $(cat "$work/err")"
grep -qi "in use" "$work/err" || fail "taken port, why: $(cat "$work/err")"
[ "$("$LAB" running "$dir")" = 0 ] || fail "servers left running after a failed up"
stop_rogue

# A server that dies at start without a word is started again, with a warning naming it.
mkdir "$work/bin"
cat > "$work/bin/nbdkit" <<'EOF_NBDKIT'
#!/usr/bin/env bash
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do [[ ${args[i]} == -P ]] && pf=${args[i+1]}; done
if [[ $pf == */luks-ipv4.pid && ! -e ${pf%.pid}.died ]]; then
    touch "${pf%.pid}.died"; echo "$$" > "$pf"; exit 0
fi
exec nbdkit "$@"
EOF_NBDKIT
chmod +x "$work/bin/nbdkit"
real_nbdkit=$(command -v nbdkit)
sed -i "s|^exec nbdkit|exec $real_nbdkit|" "$work/bin/nbdkit"
PATH="$work/bin:$PATH" "$LAB" up "$dir" 2>"$work/err" || fail "up after a silent death: $(cat "$work/err")"
[ "$("$LAB" running "$dir")" = 6 ] || fail "six servers expected after a restart"
grep -q "serve-restart server=luks-ipv4" "$work/err" || fail "no warning for the restarted server: $(cat "$work/err")"
"$LAB" down "$dir"
echo "ok: $reads reads matched"
