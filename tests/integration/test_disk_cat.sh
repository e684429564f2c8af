#!/usr/bin/env bash
# `vbak disk cat` on every URI form the lab serves: file, nbd over IPv4 and IPv6, nbds with X.509 (IPv4 literal
# and host name) and with TLS-PSK over IPv6, a LUKS-encrypted disk, and vddk through the fake
# libvixDiskLib.so. Each copy must hold exactly the disk's bytes and keep its holes; a wrong key,
# a certificate from another CA, X.509 to an IPv6 literal and a missing VDDK are refused with a
# reason.
set -euo pipefail
: "${VB_TESTS_BIN:?}"
CLI_BIN="$VB_BIN/vbak"
SERVE="$VB_TESTS_BIN/disk_serve"
T=$(mktemp -d "${TMPDIR:-/tmp}/vbdiskcat.XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# A sparse disk with data at known places (random bytes, so every byte counts).
IMG=$T/disk.img
truncate -s 20M "$IMG"
for spec in 0:3 1024:16 9000:5 20416:64; do # KiB offset : KiB length
    off=${spec%%:*} len=${spec##*:}
    head -c $((len * 1024)) /dev/urandom | dd of="$IMG" bs=1024 seek="$off" conv=notrunc status=none
done
sync "$IMG"
EXPECT_MAP=$("$CLI_BIN" disk info "$IMG" --json | jq -c .extents)
# The temp file system must keep holes, or the hole checks below would prove nothing.
[ "$(echo "$EXPECT_MAP" | jq length)" -eq 4 ] || fail "the source image's holes are not seen: $EXPECT_MAP"

# Servers: socket-activated nbdkit on ephemeral ports (disk_serve writes the port first).
serve() { # NAME ADDR nbdkit-args...
    local name=$1 addr=$2
    shift 2
    "$SERVE" "$addr" "$T/$name.port" -- nbdkit -f --exit-with-parent --log=null "$@" &
    PIDS+=($!)
    local i
    for i in $(seq 1 200); do [ -s "$T/$name.port" ] && break; sleep 0.05; done
    [ -s "$T/$name.port" ] || fail "server $name did not start"
}
port() { cat "$T/$1.port"; }

mkcerts() { # DIR SAN
    mkdir -p "$1/client"
    (cd "$1" &&
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
            -keyout ca-key.pem -out ca-cert.pem -days 2 -subj "/CN=vbak test CA" 2>/dev/null &&
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
            -keyout server-key.pem -out server.csr -subj "/CN=vbak test server" 2>/dev/null &&
        printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$2" >ext.cnf &&
        openssl x509 -req -in server.csr -CA ca-cert.pem -CAkey ca-key.pem -CAcreateserial \
            -out server-cert.pem -days 2 -extfile ext.cnf 2>/dev/null &&
        cp ca-cert.pem client/)
}
mkcerts "$T/pki" "IP:127.0.0.1,DNS:localhost"
mkcerts "$T/other-pki" "IP:127.0.0.1,DNS:localhost"
printf 'vbak:%s\n' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$T/keys.psk"
printf 'vbak:%s\n' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$T/wrong.psk"

"$VB_SRC/tests/tools/luks-image" "$IMG" "$T/enc.img" lab-pass >/dev/null

serve plain4 127.0.0.1 file "$IMG"
serve plain6 ::1 file "$IMG"
serve x509 127.0.0.1 --tls=require --tls-certificates="$T/pki" file "$IMG"
serve x509v6 ::1 --tls=require --tls-certificates="$T/pki" file "$IMG"
serve psk6 ::1 --tls=require --tls-psk="$T/keys.psk" file "$IMG"
serve luks6 ::1 --tls=require --tls-psk="$T/keys.psk" --filter=luks file "$T/enc.img" passphrase=lab-pass

# The fake VDDK: a datastore directory and a config file with a fixed tmpDirectory.
mkdir -p "$T/ds/vmfs1/vm1" "$T/vddk-tmp"
echo VMFS >"$T/ds/vmfs1/.type"
cp --sparse=always "$IMG" "$T/ds/vmfs1/vm1/vm1.vmdk"
printf 'tmpDirectory = "%s"\nvbak.fakeDatastoreDir = "%s"\n' "$T/vddk-tmp" "$T/ds" >"$T/vddk.conf"
VDDK="vddk://esx1.lab/?file=[vmfs1] vm1/vm1.vmdk&vm=moref=vm-1&libdir=$VB_TESTS_BIN/fakevddk&config=$T/vddk.conf"

URIS=(
    "$IMG"
    "file://$IMG"
    "nbd://127.0.0.1:$(port plain4)/disk0"
    "nbd://[::1]:$(port plain6)/disk0"
    "nbds://127.0.0.1:$(port x509)/disk0?tls-certificates=$T/pki/client"
    "nbds://localhost:$(port x509)/disk0?tls-certificates=$T/pki/client"
    "nbds://vbak@[::1]:$(port psk6)/disk0?tls-psk-file=$T/keys.psk"
    "nbds://vbak@[::1]:$(port luks6)/enc?tls-psk-file=$T/keys.psk"
    "$VDDK"
)
n=0
for uri in "${URIS[@]}"; do
    n=$((n + 1))
    "$CLI_BIN" disk cat "$uri" --out "$T/out$n.img" >"$T/cat$n.log" || fail "cat --out of $uri: $(cat "$T/cat$n.log")"
    cmp "$IMG" "$T/out$n.img" || fail "bytes differ through $uri"
    got=$("$CLI_BIN" disk info "$T/out$n.img" --json | jq -c .extents)
    [ "$got" = "$EXPECT_MAP" ] || fail "holes not kept through $uri: $got vs $EXPECT_MAP"
    "$CLI_BIN" disk cat "$uri" | cmp - "$IMG" || fail "stdout bytes differ through $uri"
    rm -f "$T/out$n.img"
    echo "ok: $uri"
done

# The allocation map each server reports matches the image's holes (LUKS: the filter reports
# everything as data, which is allowed: it only means more reading).
for uri in "${URIS[@]:2:5}"; do
    got=$("$CLI_BIN" disk info "$uri" --json | jq -c .extents)
    [ "$got" = "$EXPECT_MAP" ] || fail "allocation map through $uri: $got vs $EXPECT_MAP"
done
# VixDiskLib answers in whole chunks (vbak asks for 64 KiB ones): the holes rounded to chunks.
VDDK_MAP=$(echo "$EXPECT_MAP" | jq -c 'map([(.[0] / 65536 | floor) * 65536,
    (((.[0] + .[1]) / 65536 | ceil) * 65536) - ((.[0] / 65536 | floor) * 65536)])')
got=$("$CLI_BIN" disk info "$VDDK" --json | jq -c .extents)
[ "$got" = "$VDDK_MAP" ] || fail "allocation map through vddk: $got vs $VDDK_MAP"

refused() { # EXPECTED-TEXT URI [options]
    local want=$1
    shift
    if "$CLI_BIN" disk cat "$@" --out "$T/refused.img" 2>"$T/err.log" >/dev/null; then
        fail "accepted: $*"
    fi
    [ "$(wc -l <"$T/err.log")" -eq 1 ] || fail "more than one error line: $(cat "$T/err.log")"
    grep -qF -- "$want" "$T/err.log" || fail "'$want' not in: $(cat "$T/err.log")"
    echo "refused as expected: $(cat "$T/err.log")"
}
refused "TLS-PSK authentication" "nbds://vbak@[::1]:$(port psk6)/disk0?tls-psk-file=$T/wrong.psk"
refused "$T/wrong.psk" "nbds://vbak@[::1]:$(port psk6)/disk0?tls-psk-file=$T/wrong.psk"
refused "TLS verification" "nbds://127.0.0.1:$(port x509)/disk0?tls-certificates=$T/other-pki/client"
refused "IPv6 literal" "nbds://[::1]:$(port x509v6)/disk0?tls-certificates=$T/pki/client"
refused "cannot reach" "nbd://127.0.0.1:1/disk0"
refused "libvixDiskLib.so not found" "vddk://esx1.lab/?file=[vmfs1] vm1/vm1.vmdk&libdir=$T/no-vddk"
refused "$T/no-vddk/lib64/libvixDiskLib.so" "vddk://esx1.lab/?file=[vmfs1] vm1/vm1.vmdk&libdir=$T/no-vddk"
echo "PASS"
