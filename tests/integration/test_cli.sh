#!/usr/bin/env bash
# Every binary has --help; bad configuration and arguments give a non-zero exit and a one-line
# reason; the agent's VDDK configuration is written and checked.
source "$(dirname "$0")/lib.sh"

for b in vbak vbak-coordinator vbak-agent; do
  "$VB_BIN/$b" --help | grep -q '^Usage: ' || fail "$b --help"
done
"$VBAK" lab --help | grep -q 'lab create' || fail "vbak lab --help"
"$VBAK" agents --help | grep -q 'Usage: vbak agents' || fail "vbak agents --help"
pass "--help on every binary"

expect_error() { # expect_error CODE PATTERN COMMAND...
  local want=$1 pattern=$2; shift 2
  local out rc=0
  out=$("$@" 2>&1 >/dev/null) || rc=$?
  [[ $rc == "$want" ]] || fail "'$*' exited $rc, expected $want ($out)"
  [[ $(wc -l <<<"$out") == 1 ]] || fail "'$*' printed more than one error line: $out"
  grep -q -- "$pattern" <<<"$out" || fail "'$*' error '$out' does not say '$pattern'"
}

expect_error 2 "unknown command 'frobnicate'" "$VBAK" frobnicate
expect_error 2 "no configuration" env -u VBAK_CONFIG "$VBAK" agents
expect_error 2 "cannot open" "$VBAK" --config /nonexistent/vbak.conf agents
expect_error 2 "no --config given" "$VB_BIN/vbak-coordinator"
expect_error 2 "unexpected argument" "$VB_BIN/vbak-agent" stray
"$VBAK" lab create "$SITE" --proxies 1 --heartbeat-ms 200 >/dev/null
expect_error 1 "holds a site already" "$VBAK" lab create "$SITE"
expect_error 2 "out of range" "$VBAK" lab create "$TEST_DIR/x" --proxies 0
expect_error 2 "restore: --to-dir needs a directory" "$VBAK" restore 1 --to-dir
expect_error 2 "restore: --to-dir needs a directory" "$VBAK" restore 1 --to-dir --wait
expect_error 2 "restore: --new-vm needs a name" "$VBAK" restore 1 --new-vm
"$VBAK" lab create "$TEST_DIR/new/parents/site" --vms 1 --proxies 1 --disk-size 1M >/dev/null \
  || fail "lab create does not make missing parent directories"
[[ -f $TEST_DIR/new/parents/site/site.json ]] || fail "no site.json in the nested site"
[[ $("$VBAK" repo stats "$TEST_DIR/new/parents/site/repo" --json | jq .format_version) == 2 ]] \
  || fail "a lab site's repository is not format 2 by default"
"$VBAK" lab create "$TEST_DIR/f1" --vms 1 --proxies 1 --disk-size 1M --format 1 >/dev/null \
  || fail "lab create --format 1"
[[ $("$VBAK" repo stats "$TEST_DIR/f1/repo" --json | jq .format_version) == 1 ]] \
  || fail "lab create --format 1 did not make a format 1 repository"
expect_error 2 "out of range" "$VBAK" lab create "$TEST_DIR/f3" --format 3

printf 'slots = 4\ncolour = "blue"\n' >"$TEST_DIR/bad.conf"
expect_error 2 "bad.conf:2: unknown key 'colour'" "$VB_BIN/vbak-agent" --config "$TEST_DIR/bad.conf"
printf 'name = agent 1\n' >"$TEST_DIR/spaces.conf"
expect_error 2 "spaces.conf:1: .*need quotes" "$VB_BIN/vbak-agent" --config "$TEST_DIR/spaces.conf"
expect_error 2 "out of range 1..1024" "$VB_BIN/vbak-agent" --config "$SITE/agent-1.conf" --slots=0
expect_error 1 "not running\|did not answer" "$VBAK" agents
pass "clear one-line errors with file:line"

# the VDDK config an agent writes: fixed tmpDirectory, phone-home names checked
expect_error 1 "ProductName: '/' at position 5" "$VB_BIN/vbak-agent" --config "$SITE/agent-1.conf" \
  --vddk_product_name=Acme/Backup
mkdir -p "$SITE/state/agent-1/vddk-tmp/agent-1"
echo leftover >"$SITE/state/agent-1/vddk-tmp/agent-1/vixDiskLib-123.lck"
"$VBAK" lab up "$SITE" >/dev/null
wait_until 15 "agent online" has_count online 1
[[ ! -e "$SITE/state/agent-1/vddk-tmp/agent-1/vixDiskLib-123.lck" ]] || fail "the agent left an earlier run's leftover in its tmpDirectory"
grep -q "cleaned_up=1" "$SITE/log/agent-1.log" || fail "the cleanup is not logged"
vddk_conf="$SITE/state/agent-1/vddk.conf"
grep -qx "tmpDirectory = $SITE/state/agent-1/vddk-tmp/agent-1" "$vddk_conf" || fail "tmpDirectory"
grep -qx 'vixDiskLib.phoneHome.ProductName = vbak' "$vddk_conf" || fail "ProductName"
[[ -d "$SITE/state/agent-1/vddk-tmp/agent-1" ]] || fail "tmpDirectory not made"
pass "agent writes its VDDK configuration"

# configuration: a directory, a missing key and overrides, alike in all three programs
expect_error 2 "$SITE is a directory, not a configuration file" "$VBAK" --config "$SITE" agents
expect_error 2 "$SITE is a directory, not a configuration file" "$VB_BIN/vbak-agent" --config "$SITE"
grep -v '^catalog ' "$SITE/coordinator.conf" >"$TEST_DIR/nocatalog.conf"
expect_error 2 "nocatalog.conf: required key 'catalog' is not set" \
  "$VB_BIN/vbak-coordinator" --config "$TEST_DIR/nocatalog.conf"
[[ $("$VBAK" --timeout_ms=3000 agents --json | jq length) == 1 ]] || fail "vbak --timeout_ms=3000 agents"
[[ $("$VBAK" agents --timeout-ms=3000 --json | jq length) == 1 ]] || fail "vbak agents --timeout-ms=3000"
expect_error 2 "timeout_ms.*out of range" "$VBAK" --timeout_ms=1 agents
expect_error 2 "unexpected argument '--colour=blue'" "$VBAK" agents --colour=blue
pass "config errors name the file; --key=value overrides in every program"

# a key that is not an admin key is refused by name, at once (not after the timeout)
expect_error 1 "refused this CLI's admin key .* (from $SITE/state/agent-1/agent.key)" \
  "$VBAK" --admin_key="$SITE/state/agent-1/agent.key" --timeout_ms=600000 status
pass "a non-admin key is refused by name"
