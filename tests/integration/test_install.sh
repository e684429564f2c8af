#!/usr/bin/env bash
# Install layout, systemd units and the Debian package: `cmake --install` into a scratch prefix
# lays out bin/, share/doc/vbak (README, example configs) and units that pass systemd-analyze
# verify; the package built by CPack unpacks (dpkg -x) into a scratch root whose vbak runs, and
# its postinst creates the service user.
source "$(dirname "$0")/lib.sh"
BUILD=$(cd "$VB_BIN/.." && pwd)
P="$TEST_DIR/prefix"

cmake --install "$BUILD" --prefix "$P" >"$TEST_DIR/install.log" 2>&1 || fail "install: $(tail -5 "$TEST_DIR/install.log")"
for f in bin/vbak bin/vbak-coordinator bin/vbak-agent; do
  [[ -x $P/$f ]] || fail "$f not installed"
done
for f in README.md examples/coordinator.conf examples/agent.conf examples/vbak.conf; do
  [[ -f $P/share/doc/vbak/$f ]] || fail "share/doc/vbak/$f not installed"
done
[[ $("$P/bin/vbak" --version) == "vbak $(sed -n 's/^project(vbak VERSION \([0-9.]*\).*/\1/p' "$VB_SRC/CMakeLists.txt")" ]] \
  || fail "installed vbak --version: $("$P/bin/vbak" --version)"
plugin=$(find "$P/lib" -name nbdkit-vblab-plugin.so -path '*/vbak/*' | head -1)
[[ -n $plugin ]] || fail "the lab's nbdkit plugin is not installed under lib/.../vbak"
pass "cmake --install lays out bin/, lib/.../vbak and share/doc/vbak with example configs"

# The installed vbak serves a lab with the installed plugin, not the build tree's.
"$P/bin/vbak" lab create "$TEST_DIR/ilab" --vms 1 --proxies 1 --disk-size 8M >/dev/null \
  || fail "installed vbak lab create failed"
"$P/bin/vbak" lab up "$TEST_DIR/ilab" >/dev/null || fail "installed vbak lab up failed"
servers=$(pgrep -af "nbdkit.*$TEST_DIR/ilab" || true)
"$P/bin/vbak" lab down "$TEST_DIR/ilab" >/dev/null || true
grep -qF "$plugin" <<<"$servers" || fail "the installed lab's disk servers do not use $plugin: $servers"
pass "an installed vbak lab serves its disks with the installed plugin"

units="$P/lib/systemd/system"
for u in vbak-coordinator vbak-agent; do
  f="$units/$u.service"
  [[ -f $f ]] || fail "$u.service not installed"
  grep -qx "ExecStart=$P/bin/$u --config /etc/vbak/${u#vbak-}.conf" "$f" || fail "$u: ExecStart: $(grep ExecStart "$f")"
  for line in Type=notify User=vbak ProtectSystem=strict ProtectHome=yes NoNewPrivileges=yes PrivateTmp=yes \
              Restart=on-failure; do
    grep -qx "$line" "$f" || fail "$u.service lacks $line"
  done
  grep -q '^ReadWritePaths=.*/var/lib/vbak' "$f" || fail "$u.service: no ReadWritePaths for its state"
done
grep -q '^ReadWritePaths=.*/etc/vbak/keys' "$units/vbak-coordinator.service" \
  || fail "the coordinator cannot rewrite its token file"
if command -v systemd-analyze >/dev/null; then
  out=$(systemd-analyze verify "$units/vbak-coordinator.service" "$units/vbak-agent.service" 2>&1) \
    || fail "systemd-analyze verify: $out"
  [[ -z $out ]] || fail "systemd-analyze verify warns: $out"
  pass "systemd units pass systemd-analyze verify"
else
  fail "systemd-analyze is missing (Debian package systemd)"
fi

(cd "$BUILD" && cmake --build . --target package) >"$TEST_DIR/package.log" 2>&1 \
  || fail "package: $(tail -5 "$TEST_DIR/package.log")"
deb=$(ls -t "$BUILD"/vbak_*.deb | head -1)
root="$TEST_DIR/root"
dpkg -x "$deb" "$root"
[[ $("$root/usr/bin/vbak" --version) == "$("$P/bin/vbak" --version)" ]] || fail "the packaged vbak does not run"
"$root/usr/bin/vbak-coordinator" --help >/dev/null || fail "the packaged coordinator does not run"
grep -qx "ExecStart=/usr/bin/vbak-agent --config /etc/vbak/agent.conf" "$root/usr/lib/systemd/system/vbak-agent.service" \
  || fail "the packaged unit does not run /usr/bin/vbak-agent"
dpkg-deb -f "$deb" Depends | grep -q libmicrohttpd || fail "package dependencies not found"
pass "the Debian package unpacks (dpkg -x) and its binaries run"

# postinst on `configure`: creates the group and the system user once (stubs record the calls)
ctl="$TEST_DIR/control"
dpkg-deb -e "$deb" "$ctl"
stub="$TEST_DIR/stub"
mkdir -p "$stub"
for cmd in addgroup adduser install systemctl; do
  printf '#!/bin/sh\necho "%s $*" >>"%s/calls"\n' "$cmd" "$TEST_DIR" >"$stub/$cmd"
done
printf '#!/bin/sh\n[ -e "%s/user-exists" ]\n' "$TEST_DIR" >"$stub/getent"
chmod +x "$stub"/*
PATH="$stub:$PATH" sh "$ctl/postinst" configure || fail "postinst failed"
grep -q '^addgroup --system vbak' "$TEST_DIR/calls" || fail "no group made: $(cat "$TEST_DIR/calls")"
grep -q '^adduser --system --ingroup vbak --home /var/lib/vbak' "$TEST_DIR/calls" \
  || fail "no system user made: $(cat "$TEST_DIR/calls")"
grep -q '^install -d -m 0700 -o vbak -g vbak /var/lib/vbak' "$TEST_DIR/calls" || fail "no state dir"
: >"$TEST_DIR/calls"; touch "$TEST_DIR/user-exists"
PATH="$stub:$PATH" sh "$ctl/postinst" configure || fail "postinst failed the second time"
! grep -q 'adduser\|addgroup' "$TEST_DIR/calls" || fail "postinst made the user twice"
pass "postinst creates the vbak group and system user, once"
