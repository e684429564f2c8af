#!/usr/bin/env bash
# The vbak demo: installs what it needs, builds, and runs the main job on a lab site in a
# temporary directory. Leaves nothing running.
set -euo pipefail
cd "$(dirname "$0")/.."

./deploy/install-deps.sh >/dev/null
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
VBAK="$PWD/build/bin/vbak"

SITE=$(mktemp -d "${TMPDIR:-/tmp}/vbak-demo.XXXXXX")
trap '"$VBAK" lab down "$SITE/site" >/dev/null 2>&1 || true; rm -rf "$SITE"' EXIT
export VBAK_CONFIG="$SITE/site/vbak.conf"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
wait_online() {
  for _ in $(seq 100); do
    [[ $("$VBAK" agents --json | jq "[.[] | select(.state == \"online\")] | length") == "$1" ]] && return 0
    sleep 0.1
  done
  echo "demo: agents did not come online" >&2; return 1
}

step "create a lab site with 4 proxies (agents)"
"$VBAK" lab create "$SITE/site" --proxies 4 --heartbeat-ms 250

step "start the coordinator and the agents; agents enroll with the site token"
"$VBAK" lab up "$SITE/site"
wait_online 4
"$VBAK" agents

step "an agent dies (SIGKILL): the coordinator marks it lost"
kill -9 "$(cat "$SITE/site/run/agent-2.pid")"
sleep 1.2
"$VBAK" agents

step "it comes back and is recognised by its key"
"$VBAK" lab up "$SITE/site" >/dev/null
wait_online 4
"$VBAK" agents

step "coordinator status"
"$VBAK" status

step "stop everything"
"$VBAK" lab down "$SITE/site"
echo
echo "demo finished: 4 agents enrolled, one lost and recovered, site stopped."
