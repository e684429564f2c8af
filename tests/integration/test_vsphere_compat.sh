#!/usr/bin/env bash
# vSphere versions and file service decoding: API versions outside vSphere 6.5 .. 8.x are
# refused clearly; a file service that decodes names twice (vSphere 6.7, 6.7 U1) is met with
# double encoding, learned after a 404 and kept for the session.
. "$(dirname "$0")/vsphere_lib.sh"

start_fixture old -api-version 6.0
start_fixture next -api-version 9.0.0.0
start_fixture v8 -api-version 8.0.2.0
start_fixture v67 -decode double -no-head
start_fixture v6 -listen '[::1]:0'

out=$(probe old about 2>&1) && fail "API 6.0 was accepted"
echo "$out" | grep -q "vSphere API version 6.0 is not supported" && echo "$out" | grep -q "6.5 through 8.x" &&
    ok "6.0 refused: $out" || fail "6.0 message: $out"
out=$(probe next about 2>&1) && fail "API 9.0 was accepted"
echo "$out" | grep -q "upgrade vbak" && ok "9.0 refused" || fail "9.0 message: $out"
out=$(probe v8 about 2>/dev/null)
[ "$(echo "$out" | jq -r .api_version)" = 8.0.2.0 ] && ok "8.0.2.0 accepted" || fail "8.0.2.0: $out"

sp=$(info v67 '.vms[] | select(.name | startswith("sp")) | .disks[0].flat_path')
spf=$(info v67 '.vms[] | select(.name | startswith("sp")) | .disks[0].flat_file')
out=$(probe v67 file-get "$sp" 100 200000 "$WORK/d1" 2>"$WORK/d1.err")
cmp -s "$WORK/d1" <(tail -c +101 "$spf" | head -c 200000) && [ "$(echo "$out" | jq -r .encoding)" = double ] &&
    ok "double-decoding service: 404 with single, read with double" || fail "double decoding: $out $(cat "$WORK/d1.err")"
grep -q "file service needs double encoding" "$WORK/d1.err" || fail "the switch was not logged"
out=$(probe v67 --encoding double file-get "$sp" 100 200000 "$WORK/d2" 2>"$WORK/d2.err")
cmp -s "$WORK/d2" "$WORK/d1" && ! grep -q "needs" "$WORK/d2.err" &&
    ok "double encoding as the first guess needs no retry" || fail "double first: $out"
probe v67 read-extents "$sp" 4 "$WORK/d3" 0:1000000 2000000:1149824 >/dev/null 2>&1 &&
    cmp -s "$WORK/d3" <(head -c 1000000 "$spf"; tail -c +2000001 "$spf") &&
    ok "parallel reader on the double-decoding service" || fail "parallel reader, double"
# This service also answers HEAD with 405: sizes come from a one-byte ranged GET.
size=$(probe v67 file-size "$sp" 2>"$WORK/size.err")
[ "$size" = "$(stat -c %s "$spf")" ] && ok "size without HEAD: $size" || fail "size without HEAD: $size $(cat "$WORK/size.err")"
# A plain name is the same in both encodings: no 404 detour, nothing learned.
fp=$(info v67 '.vms[] | select(.name == "vvol-vm") | .disks[0].flat_path')
out=$(probe v67 file-get "$fp" 0 4096 "$WORK/d4" 2>/dev/null)
[ "$(echo "$out" | jq -r .encoding)" = unknown ] && ok "plain names teach nothing" || fail "plain: $out"

# ---- IPv6 ----
case "$(info v6 .url)" in "https://[::1]:"*) ;; *) fail "the IPv6 fixture listens on $(info v6 .url)" ;; esac
out=$(probe v6 about 2>&1 | tail -n 1)
[ "$(echo "$out" | jq -r .api_version 2>/dev/null)" = 6.5 ] && ok "IPv6 with the CA file (name check on ::1)" ||
    fail "IPv6, CA file: $out"
out=$(probe v6 --thumbprint inventory 2>/dev/null | jq '[.vms[] | select(.fcd | not)] | length')
[ "$out" = "$(info v6 '.vms | length')" ] && ok "IPv6 with a pinned thumbprint: $out VMs" || fail "IPv6 pinned: $out"
fp=$(info v6 '.vms[] | select(.name | startswith("sp")) | .disks[0].flat_path')
ff=$(info v6 '.vms[] | select(.name | startswith("sp")) | .disks[0].flat_file')
probe v6 read-extents "$fp" 2 "$WORK/v6.read" 0:1048576 >/dev/null 2>&1 && cmp -s "$WORK/v6.read" <(head -c 1048576 "$ff") &&
    ok "IPv6 file service read" || fail "IPv6 file service read"

finish
