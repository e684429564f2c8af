#!/usr/bin/env bash
# Agents enroll and register, go lost when killed, come back, and survive a coordinator SIGKILL.
source "$(dirname "$0")/lib.sh"

"$VBAK" lab create "$SITE" --proxies 3 --heartbeat-ms 200 --liveness 3 >/dev/null
"$VBAK" lab up "$SITE" >/dev/null
wait_until 15 "three agents online" has_count online 3
agents_json | jq -e 'all(.[]; has("name") and has("state") and has("host") and has("datastore")
                     and has("slots") and has("transports") and has("last_seen"))' >/dev/null \
  || fail "agents JSON lacks a required key"
[[ $(agents_json | jq -r '.[0].host') == esx-01 ]] || fail "agent-1 does not report its host"
lun=$("$VBAK" lab show "$SITE" --json | jq -r '.proxies[0].luns[0]')
[[ -n $lun && $(agents_json | jq -r '.[0].luns[0]') == "$lun" ]] || fail "agent-1 does not report the LUN its proxy sees"
pass "three agents enroll and register"

# they run on this machine, say so, and the coordinator counts them as sharing its CPUs
mid=$(cat /etc/machine-id 2>/dev/null || true)
[[ $mid =~ ^[0-9a-f]{32}$ ]] && mid="$mid@$(uname -n)" || mid=
agents_json | jq -e --arg m "$mid" '($m | if . == "" then null else . end) as $e |
                                    all(.[]; .machine == $e and .cpus >= 1)' >/dev/null \
  || fail "agents do not report this machine: $(agents_json | jq -c '[.[] | [.machine, .cpus]]')"
if [[ -n $mid ]]; then
  grep -q "machine_shared agent=agent-[0-9] machine=$mid tasks_at_once=[0-9]" "$SITE/log/coordinator.log" \
    || fail "the coordinator does not count the three agents as sharing one machine"
fi
pass "agents report the machine they share"

# the human table names them too
"$VBAK" agents | grep -q '^agent-3 *online *esx-03 *vsanDatastore' || fail "table output"
for f in "$SITE"/state/agent-*/agent.key_secret; do
  [[ $(stat -c %a "$f") == 600 ]] || fail "$f is not mode 600"
done
pass "key pairs are private (0600)"

# SIGKILL an agent: lost within its liveness (3 x 200 ms) plus slack
kill -9 "$(cat "$SITE/run/agent-1.pid")"
wait_until 5 "agent-1 lost" state_is agent-1 lost
pass "killed agent goes lost"

# start it again: recognised by its key (no new enrollment), online
enrolled_before=$("$VBAK" status --json | jq .counters.enrolled)
"$VBAK" lab up "$SITE" >/dev/null
wait_until 15 "agent-1 online again" state_is agent-1 online
[[ $("$VBAK" status --json | jq .counters.enrolled) == "$enrolled_before" ]] || fail "re-enrolled"
grep -q "registered agent=agent-1" "$SITE/log/agent-1.log" || fail "agent-1 did not register by key"
pass "restarted agent is recognised by its key"

# coordinator SIGKILL + restart: agents reconnect on their own, no duplicates, catalog intact
kill -9 "$(cat "$SITE/run/coordinator.pid")"
sleep 1 # let the agents notice the silence
"$VBAK" lab up "$SITE" >/dev/null
wait_until 20 "three agents online after coordinator restart" has_count online 3
[[ $(agents_json | jq length) == 3 ]] || fail "duplicate agents after restart"
[[ $(sqlite3 "$SITE/catalog.db" 'select count(*) from agents') == 3 ]] || fail "catalog rows"
[[ $(sqlite3 "$SITE/catalog.db" 'pragma integrity_check') == ok ]] || fail "catalog integrity"
pass "coordinator SIGKILL and restart: agents back, catalog intact"

# the coordinator going away for a while: agents reconnect with backoff once it is back
"$VBAK" lab down "$SITE" >/dev/null
"$VBAK" lab up "$SITE" >/dev/null
wait_until 20 "three agents online after a full restart" has_count online 3
pass "full restart"

"$VBAK" lab down "$SITE" >/dev/null
! pgrep -f "$SITE/" >/dev/null || fail "processes left running after lab down"
pass "lab down leaves nothing running"
