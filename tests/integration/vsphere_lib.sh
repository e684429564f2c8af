# Shared by the vSphere integration tests: start the vCenter simulator fixture and drive the
# provider through vbak-vsphere-probe. Sourced, not run.
set -u

TESTS_BIN=${VB_TESTS_BIN:?VB_TESTS_BIN not set}
FIXTURE=$TESTS_BIN/vcsim-fixture
PROBE=$TESTS_BIN/vbak-vsphere-probe
WORK=$(mktemp -d "${TMPDIR:-/tmp}/vbak-vsphere-test.XXXXXX")
FIXTURE_PIDS=()
FAILED=0

cleanup() {
    for pid in "${FIXTURE_PIDS[@]}"; do
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    [ -n "${VB_KEEP_WORK:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    FAILED=1
}

ok() {
    echo "ok: $*"
}

finish() {
    if [ "$FAILED" -ne 0 ]; then
        echo "some checks failed" >&2
        exit 1
    fi
    echo "all checks passed"
}

if [ ! -x "$FIXTURE" ]; then
    echo "FAIL: $FIXTURE is missing: install golang-go and golang-github-vmware-govmomi-dev" \
         "(deploy/install-deps.sh) and rebuild" >&2
    exit 1
fi
command -v jq >/dev/null || { echo "FAIL: jq is missing" >&2; exit 1; }

# start_fixture NAME [fixture flags...]: starts a simulator; its JSON lands in $WORK/NAME.json.
start_fixture() {
    local name=$1
    shift
    "$FIXTURE" -dir "$WORK/$name" -info "$WORK/$name.json" "$@" >"$WORK/$name.out" 2>"$WORK/$name.log" &
    local pid=$!
    FIXTURE_PIDS+=("$pid")
    local i
    for i in $(seq 1 600); do
        [ -s "$WORK/$name.json" ] && return 0
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "FAIL: fixture $name exited before it was ready:" >&2
            cat "$WORK/$name.log" >&2
            exit 1
        fi
        sleep 0.1
    done
    echo "FAIL: fixture $name not ready after 60 s" >&2
    exit 1
}

# info NAME JQ: a value from a fixture's JSON.
info() {
    jq -r "$2" "$WORK/$1.json"
}

# probe NAME [--trust ca|thumbprint] ARGS...: runs the probe with the fixture's URL and user.
probe() {
    local name=$1
    shift
    local trust=(--ca-file "$(info "$name" .ca_file)")
    if [ "${1:-}" = "--thumbprint" ]; then
        trust=(--thumbprint "$(info "$name" .thumbprint)")
        shift
    fi
    "$PROBE" --url "$(info "$name" .url)" --user "$(info "$name" .user)" \
        --password "$(info "$name" .password)" "${trust[@]}" "$@"
}
