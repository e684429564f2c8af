#!/usr/bin/env bash
# A site set up with `vbak site init` and `vbak site agent-conf`, no lab anywhere: the coordinator
# and an agent run from those files, the agent enrolls; a rotated token refuses new agents with the
# old one and leaves enrolled ones alone; a removed agent is refused from then on.
source "$(dirname "$0")/lib.sh"

S="$TEST_DIR/prod"
mkdir -p "$TEST_DIR/var"
export VBAK_CONFIG="$S/vbak.conf"
agent_port=$(free_port)
control_port=$(free_port)
"$VBAK" site init "$S" --agent-endpoint "tcp://127.0.0.1:$agent_port" \
  --control-endpoint "tcp://127.0.0.1:$control_port" --catalog "$TEST_DIR/var/catalog.db" \
  >"$TEST_DIR/init.out" || fail "site init failed"
[[ ! -e $S/site.json ]] || fail "site init made a lab site"
[[ $(stat -c %a "$S/keys/enrollment.token") == 600 ]] || fail "token file is not 0600"
[[ $(stat -c %a "$S/keys/coordinator.key_secret") == 600 ]] || fail "secret key is not 0600"
[[ $(stat -c %a "$S/keys/admin.key_secret") == 600 ]] || fail "admin secret key is not 0600"
[[ $(conf_value "$S/coordinator.conf" agent_endpoint) == "tcp://127.0.0.1:$agent_port" ]] \
  || fail "coordinator.conf has another agent endpoint"
grep -q "vbak-coordinator --config $S/coordinator.conf" "$TEST_DIR/init.out" || fail "no next steps"
token0=$(cat "$S/keys/enrollment.token")
if "$VBAK" site init "$S" --agent-endpoint tcp://127.0.0.1:1 2>"$TEST_DIR/again.err"; then
  fail "site init overwrote a site"
fi
grep -q "exists already" "$TEST_DIR/again.err" || fail "no reason: $(cat "$TEST_DIR/again.err")"
[[ $(cat "$S/keys/enrollment.token") == "$token0" ]] || fail "the refused init changed the token"
pass "site init: keys, 0600 token and configs; refuses to overwrite"

# Type=notify: run as systemd would, with a NOTIFY_SOCKET; READY=1 comes once it serves.
"$VB_TESTS_BIN/vbak-notify-listen" "$TEST_DIR/notify.sock" 20000 >"$TEST_DIR/notify.out" &
listener=$!
VB_PIDS+=($!)
wait_until 5 "the notify socket" test -S "$TEST_DIR/notify.sock"
NOTIFY_SOCKET="$TEST_DIR/notify.sock" "$VB_BIN/vbak-coordinator" --config "$S/coordinator.conf" \
  --heartbeat_interval_ms=500 --log_file="$TEST_DIR/coordinator.log" --log_format=json \
  >"$TEST_DIR/coordinator.out" 2>&1 &
pid_coordinator=$!
VB_PIDS+=($!)
wait "$listener" || fail "no READY=1 from the coordinator: $(cat "$TEST_DIR/notify.out")"
grep -qx "READY=1 MAINPID=$pid_coordinator" "$TEST_DIR/notify.out" \
  || fail "notification: $(cat "$TEST_DIR/notify.out")"
"$VBAK" status >/dev/null || fail "the coordinator said READY=1 but does not answer"
pass "the coordinator notifies READY=1 with its pid (Type=notify) once it answers"
[[ -s $TEST_DIR/var/catalog.db && ! -e $S/catalog.db ]] || fail "the catalog is not where --catalog put it"

# agent NAME [agent-conf options]: writes NAME.conf with agent-conf and starts the agent
start_agent() {
  local name=$1; shift
  "$VBAK" site agent-conf "$S" "$name" --state-dir "$TEST_DIR/state/$name" "$@" \
    >"$TEST_DIR/$name.conf" || fail "agent-conf $name failed"
  "$VB_BIN/vbak-agent" --config "$TEST_DIR/$name.conf" >"$TEST_DIR/$name.log" 2>&1 &
  VB_PIDS+=($!)
  eval "pid_$name=$!"
}
cp -p "$S/keys/enrollment.token" "$TEST_DIR/old.token"
"$VB_TESTS_BIN/vbak-notify-listen" "$TEST_DIR/notify.sock" 20000 >"$TEST_DIR/notify.out" &
listener=$!
VB_PIDS+=($!)
wait_until 5 "the notify socket" test -S "$TEST_DIR/notify.sock"
NOTIFY_SOCKET="$TEST_DIR/notify.sock" start_agent proxy_a --host esx-01 --datastore ds-01 \
  --luns naa.1,naa.2 --slots 3 --token-file "$TEST_DIR/old.token"
wait "$listener" || fail "no READY=1 from the agent: $(cat "$TEST_DIR/notify.out")"
grep -qx "READY=1 MAINPID=$pid_proxy_a" "$TEST_DIR/notify.out" \
  || fail "agent notification: $(cat "$TEST_DIR/notify.out")"
wait_until 15 "proxy_a online" state_is proxy_a online
a=$(agents_json | jq -c '.[] | select(.name == "proxy_a")')
[[ $(jq -r '[.host, .datastore, (.luns | join(",")), .slots] | @tsv' <<<"$a") == \
   $'esx-01\tds-01\tnaa.1,naa.2\t3' ]] || fail "agent facts from agent-conf lost: $a"
pass "a coordinator and an agent from site init / agent-conf: enrolled, vbak agents shows it"

"$VBAK" site token rotate >"$TEST_DIR/rotate.out" || fail "token rotate failed"
grep -q "$S/keys/enrollment.token" "$TEST_DIR/rotate.out" || fail "rotate: $(cat "$TEST_DIR/rotate.out")"
[[ $(cat "$S/keys/enrollment.token") != "$token0" ]] || fail "the token did not change"
[[ $(stat -c %a "$S/keys/enrollment.token") == 600 ]] || fail "rotated token is not 0600"
"$VBAK" site agent-conf "$S" proxy_b --state-dir "$TEST_DIR/state/proxy_b" \
  --token-file "$TEST_DIR/old.token" >"$TEST_DIR/proxy_b.conf"
if timeout 10 "$VB_BIN/vbak-agent" --config "$TEST_DIR/proxy_b.conf" >"$TEST_DIR/proxy_b.log" 2>&1; then
  fail "an agent with the old token was accepted"
fi
grep -q "enrollment token refused for agent 'proxy_b'" "$TEST_DIR/proxy_b.log" \
  || fail "no clear refusal: $(tail -3 "$TEST_DIR/proxy_b.log")"
[[ -z $(agent_state proxy_b) ]] || fail "proxy_b stored"
# the enrolled agent keeps working, also across a restart (its key, not the token, lets it in)
wait_until 10 "proxy_a online after the rotation" state_is proxy_a online
kill "$pid_proxy_a"
wait "$pid_proxy_a" || true
"$VB_BIN/vbak-agent" --config "$TEST_DIR/proxy_a.conf" >>"$TEST_DIR/proxy_a.log" 2>&1 &
pid_proxy_a=$!
VB_PIDS+=($!)
wait_until 15 "proxy_a registered again" grep -q "registered agent=proxy_a" "$TEST_DIR/coordinator.log"
wait_until 10 "proxy_a online after its restart" state_is proxy_a online
start_agent proxy_c
wait_until 15 "proxy_c online with the new token" state_is proxy_c online
pass "token rotate: old token refused for a new agent, enrolled agent unaffected, new token works"

"$VBAK" agents remove proxy_a >"$TEST_DIR/remove.out" || fail "agents remove failed"
[[ -z $(agent_state proxy_a) ]] || fail "proxy_a still listed"
# the running agent is cut off: refused when it comes back, even with a valid token
wait_until 15 "removed proxy_a stops" bash -c "! kill -0 $pid_proxy_a"
grep -q "which was removed from this site" "$TEST_DIR/proxy_a.log" \
  || fail "removed agent not told why: $(tail -3 "$TEST_DIR/proxy_a.log")"
if timeout 10 "$VB_BIN/vbak-agent" --config "$TEST_DIR/proxy_a.conf" \
    --enrollment_token_file="$S/keys/enrollment.token" >"$TEST_DIR/proxy_a2.log" 2>&1; then
  fail "the removed agent's key got back in with the new token"
fi
grep -q "which was removed from this site" "$TEST_DIR/proxy_a2.log" || fail "no reason on retry"
[[ $(counter refused_removed_key) -ge 2 ]] || fail "refusals of a removed key not counted"
if "$VBAK" agents remove proxy_a 2>"$TEST_DIR/remove2.err"; then fail "removed twice"; fi
grep -q "no agent named 'proxy_a'" "$TEST_DIR/remove2.err" || fail "$(cat "$TEST_DIR/remove2.err")"
wait_until 10 "proxy_c still online" state_is proxy_c online
pass "agents remove: the agent's key is refused from then on"

# logs: JSON lines, and SIGHUP reopens the file (as logrotate's postrotate does)
mv "$TEST_DIR/coordinator.log" "$TEST_DIR/coordinator.log.1"
kill -HUP "$pid_coordinator"
wait_until 10 "the log file reopened" grep -q '"event":"log_reopened"' "$TEST_DIR/coordinator.log"
"$VBAK" agents remove nobody 2>/dev/null || true
kill -0 "$pid_coordinator" || fail "SIGHUP stopped the coordinator"
"$VBAK" status >/dev/null || fail "the coordinator stopped answering after SIGHUP"
jq -e -s 'all(.[]; (.time | test("Z$")) and .level and .program == "vbak-coordinator" and .module and .event and .msg)' \
  "$TEST_DIR/coordinator.log.1" "$TEST_DIR/coordinator.log" >/dev/null || fail "not JSON lines: $(head -3 "$TEST_DIR/coordinator.log.1")"
jq -e -s 'any(.[]; .event == "enrolled" and (.msg | contains("agent=proxy_c")))' "$TEST_DIR/coordinator.log.1" >/dev/null \
  || fail "the enrollment is not in the rotated log"
[[ ! -s $TEST_DIR/coordinator.out ]] || fail "log lines went to stderr: $(head -3 "$TEST_DIR/coordinator.out")"
pass "log_format = json writes JSON lines; SIGHUP reopens log_file"
