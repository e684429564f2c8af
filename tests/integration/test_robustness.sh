#!/usr/bin/env bash
# Garbage from unauthenticated and authenticated peers on every coordinator port: dropped,
# counted, logged; the coordinator keeps serving everyone else.
source "$(dirname "$0")/lib.sh"
FUZZ="timeout 60 $VB_TESTS_BIN/vbak-fuzzpeer"

"$VBAK" lab create "$SITE" --proxies 3 --heartbeat-ms 200 >/dev/null
"$VBAK" lab up "$SITE" >/dev/null
wait_until 15 "three agents online" has_count online 3

agent_ep=$(conf_value "$SITE/coordinator.conf" agent_endpoint)
control_ep=$(conf_value "$SITE/coordinator.conf" control_endpoint)
server_key=$(conf_value "$SITE/agent-1.conf" coordinator_public_key)
coordinator_pid=$(cat "$SITE/run/coordinator.pid")

# raw bytes on both TCP ports
for ep in "$agent_ep" "$control_ep"; do
  port=${ep##*:}
  $FUZZ raw 127.0.0.1 "$port" 12 >/dev/null
done
kill -0 "$coordinator_pid" || fail "coordinator died on raw garbage"
pass "raw garbage on both ports survived"

# CURVE-authenticated garbage from a stranger, and from an enrolled agent's own identity
$FUZZ curve "$agent_ep" "$server_key" >/dev/null
$FUZZ curve "$agent_ep" "$server_key" --key "$SITE/state/agent-2/agent.key" >/dev/null
kill -0 "$coordinator_pid" || fail "coordinator died on authenticated garbage"
malformed_at_least() { (($(counter malformed) >= $1)); }
wait_until 15 "malformed frames counted" malformed_at_least 40
[[ $(counter oversized) -ge 1 ]] || fail "oversized frame not counted"
[[ $(counter results_dropped) -ge 1 ]] || fail "a result for no task of this agent was not dropped"
grep -q 'dropped peer=.*protocol version 7' "$SITE/log/coordinator.log" || fail "version not logged"
pass "authenticated garbage dropped and counted"

# the control socket: a key that is not an admin key does not get in; garbage from the admin
$FUZZ curve "$control_ep" "$server_key" >/dev/null
[[ $(counter control_denied) -ge 1 ]] || fail "non-admin control connection not counted"
$FUZZ curve "$control_ep" "$server_key" --key "$SITE/keys/admin.key" >/dev/null
[[ $(counter unexpected) -ge 1 ]] || fail "a task result on the control socket was not counted"
pass "control socket garbage survived"

# malformed requests from an admin: each refused before anything runs, with a message that names
# the command and the argument (the CLI prints it as it is); nothing started, nothing crashed
admin_says() { # admin_says EXPECTED COMMAND [ARGS_JSON]: the answer is "CODE MESSAGE"
  local want=$1 out
  shift
  out=$($FUZZ admin "$control_ep" "$server_key" "$SITE/keys/admin.key" "$@") \
    || fail "no answer to the control request $*"
  [[ $out == "$want" ]] || fail "control request $* answered '$out', expected '$want'"
}
admin_says "-1 backup: unknown argument 'vmm'" backup '{"vmm": ["vm-01"]}'
admin_says "-1 restore: 'rp' must be an integer" restore '{"rp": "1", "to_vm": true}'
admin_says "-1 job.show: missing argument 'id'" job.show '{"tasks": true}'
admin_says "-1 prune: 'repack_below' must be between 0 and 100" prune '{"keep_last": 1, "repack_below": 1000}'
admin_says "-1 agent.remove: 'name' must be a string" agent.remove '{"name": ["agent-1"]}'
admin_says "-1 status: the arguments are not a JSON object" status '[1]'
admin_says "-4 unknown command 'frobnicate'" frobnicate '{}'
[[ $($FUZZ admin "$control_ep" "$server_key" "$SITE/keys/admin.key" agents '{"a": ') == "-1 agents: the arguments are not JSON"* ]] \
  || fail "arguments that are not JSON"
grep -q "control_refused peer=.*reason=\"backup: unknown argument 'vmm'\"" "$SITE/log/coordinator.log" \
  || fail "a refused control request is not logged"
[[ $("$VBAK" jobs --json | jq length) == 0 ]] || fail "a refused request started a job: $("$VBAK" jobs --json)"
state_is agent-1 online || fail "agent.remove with a bad name removed an agent"
[[ $($FUZZ admin "$control_ep" "$server_key" "$SITE/keys/admin.key" ping) == '0 {"version":'* ]] \
  || fail "ping after the refused requests"
kill -0 "$coordinator_pid" || fail "coordinator died on malformed control requests"
pass "malformed control requests refused by the command table's schemas, clearly, nothing run"

# everyone else is still served: all agents online, CLI answers, agent-2 not disturbed
wait_until 15 "all agents online after the garbage" has_count online 3
kill -0 "$coordinator_pid" || fail "coordinator died"
verdict=$($FUZZ ack "$agent_ep" "$server_key" --key "$SITE/state/agent-2/agent.key" || true)
[[ $verdict == "refused: this key is enrolled as agent 'agent-2'"* ]] \
  || fail "an enrolled key asking for another name must be refused"
state_is agent-2 online || fail "agent-2 disturbed by the rename attempt"
pass "coordinator keeps serving"
