#!/usr/bin/env bash
# Wrong tokens, unknown keys and name takeovers are refused, counted and store nothing.
source "$(dirname "$0")/lib.sh"

"$VBAK" lab create "$SITE" --proxies 2 --heartbeat-ms 200 >/dev/null
"$VBAK" lab up "$SITE" >/dev/null
wait_until 15 "two agents online" has_count online 2

# an agent config like agent-2's, with its own state dir and the given overrides
rogue() {
  local name=$1; shift
  mkdir -p "$TEST_DIR/rogue"
  timeout 10 "$VB_BIN/vbak-agent" --config "$SITE/agent-2.conf" --name="$name" \
    --state_dir="$TEST_DIR/rogue/$name" --pid_file="$TEST_DIR/rogue/$name.pid" "$@" \
    >"$TEST_DIR/rogue/$name.log" 2>&1
}

# wrong token
printf 'not-the-site-token-at-all\n' >"$TEST_DIR/bad.token"
chmod 600 "$TEST_DIR/bad.token"
if rogue agent-9 --enrollment_token_file="$TEST_DIR/bad.token"; then fail "wrong token accepted"; fi
grep -q "enrollment token refused" "$TEST_DIR/rogue/agent-9.log" || fail "no reason given"
[[ $(counter refused_token) -ge 1 ]] || fail "wrong token not counted"
[[ $(agents_json | jq length) == 2 ]] || fail "wrong-token agent stored"
[[ $(sqlite3 "$SITE/catalog.db" "select count(*) from agents where name='agent-9'") == 0 ]] \
  || fail "wrong-token agent in catalog"
grep -q 'enroll_refused' "$SITE/log/coordinator.log" || fail "refusal not logged"
pass "wrong token refused, logged, counted, nothing stored"

# unknown key: an agent that believes it is enrolled, with a key the site never saw, no token
mkdir -p "$TEST_DIR/rogue/agent-8" && touch "$TEST_DIR/rogue/agent-8/enrolled"
if rogue agent-8 --enrollment_token_file=; then fail "unknown key accepted"; fi
grep -q "never enrolled" "$TEST_DIR/rogue/agent-8.log" || fail "unknown key: no reason"
[[ $(counter refused_unknown_key) -ge 1 ]] || fail "unknown key not counted"
[[ $(agents_json | jq length) == 2 ]] || fail "unknown-key agent stored"
pass "unknown key refused"

# a second agent with a new key and the right token cannot take over agent-1's name
key_before=$(agents_json | jq -r '.[] | select(.name=="agent-1") | .public_key')
if rogue agent-1; then fail "name takeover accepted"; fi
grep -q "cannot be taken over" "$TEST_DIR/rogue/agent-1.log" || fail "takeover: no reason"
[[ $(agents_json | jq -r '.[] | select(.name=="agent-1") | .public_key') == "$key_before" ]] \
  || fail "agent-1's key changed"
[[ $(counter refused_name) -ge 1 ]] || fail "takeover not counted"
state_is agent-1 online || fail "the real agent-1 was disturbed"
pass "name takeover refused"

# the coordinator's key is checked too: an agent given the wrong server key never registers; its
# hello goes unanswered past the handshake deadline, which it says, and it tries again
wrong_server_key=$(sed -n 's/^ *public-key = "\(.*\)"$/\1/p' "$SITE/keys/admin.key")
[[ -n $wrong_server_key ]] || fail "no public key in admin.key"
rc=0
rogue agent-7 --coordinator_public_key="$wrong_server_key" --hello_timeout_ms=300 --reconnect_initial_ms=100 || rc=$?
[[ $rc == 124 ]] || fail "agent-7 exited $rc instead of retrying until stopped: $(cat "$TEST_DIR/rogue/agent-7.log")"
grep -q "started agent=agent-7 .*hello_timeout_ms=300" "$TEST_DIR/rogue/agent-7.log" &&
  [[ $(grep -c "hello_unanswered endpoint=.* limit_ms=300 " "$TEST_DIR/rogue/agent-7.log") -ge 2 ]] \
  || fail "agent-7 did not retry its unanswered hello: $(cat "$TEST_DIR/rogue/agent-7.log")"
! grep -q "enrolled agent=agent-7\|registered agent=agent-7" "$TEST_DIR/rogue/agent-7.log" || fail "agent-7 got in"
[[ $(agents_json | jq length) == 2 ]] || fail "agent with the wrong server key got in"
pass "wrong coordinator key: no connection"
