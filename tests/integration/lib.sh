# Shared helpers for the integration tests: a lab site in a temp dir, polling, assertions.
# Tests source this file; ctest sets VB_BIN (build/bin), VB_TESTS_BIN (build/tests), VB_SRC.
set -euo pipefail

VB_BIN=${VB_BIN:?VB_BIN must point at build/bin}
VB_TESTS_BIN=${VB_TESTS_BIN:-$VB_BIN/../tests}
VBAK="$VB_BIN/vbak"

TEST_DIR=$(mktemp -d "${TMPDIR:-/tmp}/vbak-test.XXXXXX")
SITE="$TEST_DIR/site"
export VBAK_CONFIG="$SITE/vbak.conf"

cleanup() {
  local rc=$?
  if [[ -d $SITE ]]; then
    "$VBAK" lab down "$SITE" >/dev/null 2>&1 || true
  fi
  if ((rc != 0)) && [[ -d $SITE/log ]]; then
    echo "---- logs (test failed) ----" >&2
    tail -n 40 "$SITE"/log/*.log >&2 || true
  fi
  rm -rf "$TEST_DIR"
  exit $rc
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok - $*"; }

# wait_until TIMEOUT_S DESCRIPTION COMMAND...: polls COMMAND every 0.1 s.
wait_until() {
  local timeout=$1 what=$2; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail "timed out after ${timeout}s waiting for: $what"
    sleep 0.1
  done
}

agents_json() { "$VBAK" agents --json; }
agent_state() { agents_json | jq -r --arg n "$1" '.[] | select(.name == $n) | .state'; }
count_state() { agents_json | jq --arg s "$1" '[.[] | select(.state == $s)] | length'; }
has_count() { [[ $(count_state "$1") == "$2" ]]; }
state_is() { [[ $(agent_state "$1") == "$2" ]]; }
counter() { "$VBAK" status --json | jq -r ".counters.$1"; }
conf_value() { sed -n "s/^$2 = \"\\(.*\\)\"$/\\1/p" "$1"; }
