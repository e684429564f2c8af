# Shared by the tests that back up vSphere VMs through the coordinator: the vCenter simulator
# fixture, an optional TCP relay in front of it, a lab site (keys, token, agents, repository) whose
# coordinator talks to the simulator, and the checks such tests make. Sourced after lib.sh.

FIXTURE=$VB_TESTS_BIN/vcsim-fixture
[[ -x $FIXTURE ]] || fail "$FIXTURE is missing: install golang-go and golang-github-vmware-govmomi-dev (deploy/install-deps.sh) and rebuild"
command -v jq >/dev/null || fail "jq is missing"

# The simulator (same flags as vsphere_lib.sh's start_fixture, and the VMs' disks for the fake
# VixDiskLib in $FIX.vddk, PrepareForAccess/EndAccess in $FIX.access; while $FIX.hold exists,
# CreateVM_Task and RemoveSnapshot_Task wait, each named in $FIX.hold.held); stopped before
# lib.sh's cleanup.
FIX=$TEST_DIR/vcsim
FIX_PID=
RELAY_PID=
stop_fixture() {
  local pid
  rm -f "$FIX.hold"
  for pid in $FIX_PID $RELAY_PID; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}
trap 'rc=$?; stop_fixture; (exit $rc); cleanup' EXIT
"$FIXTURE" -dir "$FIX" -info "$FIX.json" -vddk-inventory "$FIX.vddk" -access-log "$FIX.access" -hold-file "$FIX.hold" >"$FIX.out" 2>"$FIX.log" &
FIX_PID=$!
fixture_ready() { [[ -s $FIX.json ]] || { kill -0 "$FIX_PID" && false; }; }
wait_until 60 "the vCenter simulator" fixture_ready
[[ -s $FIX.json ]] || fail "the simulator exited: $(cat "$FIX.log")"
fx() { jq -r "$1" "$FIX.json"; }

# start_relay OUTAGE_MS: a TCP relay in front of the simulator (tests/tools/vbak-tcpproxy); sets
# RELAY_URL. `kill -USR1 $RELAY_PID` makes the network blink: every connection is reset and new
# ones are refused for OUTAGE_MS.
start_relay() {
  "$VB_TESTS_BIN/vbak-tcpproxy" --to "$(fx .url | sed 's|^https://||')" \
    --port-file "$TEST_DIR/relay.port" --outage-ms "$1" 2>"$TEST_DIR/relay.log" &
  RELAY_PID=$!
  wait_until 10 "the TCP relay" test -s "$TEST_DIR/relay.port"
  RELAY_URL="https://127.0.0.1:$(cat "$TEST_DIR/relay.port")"
}

# vsphere_site PROXIES URL: a lab site of PROXIES agents whose coordinator has provider "vsphere"
# on URL (the simulator's, or the relay's) with the simulator's user, password file ($PW) and CA;
# $TEST_DIR/base.conf keeps the coordinator.conf before those keys.
vsphere_site() {
  "$VBAK" lab create "$SITE" --proxies "$1" --heartbeat-ms 200 >/dev/null
  PW=$TEST_DIR/vsphere.password
  (umask 077 && fx .password >"$PW")
  CONF=$SITE/coordinator.conf
  sed -i '/^site = /d; /^provider = /d' "$CONF"
  cp "$CONF" "$TEST_DIR/base.conf"
  printf '%s\n' 'provider = "vsphere"' "vsphere_url = \"$2\"" "vsphere_user = \"$(fx .user)\"" \
    "vsphere_password_file = \"$PW\"" "vsphere_ca_file = \"$(fx .ca_file)\"" >>"$CONF"
}

# restore_and_compare JOB_JSON VM: restores the VM's restore point to a directory; every disk must
# equal the flat file the fixture wrote (and the digest it published). Prints the disks compared.
restore_and_compare() {
  local rp out n=0 key flat sha r
  rp=$(rp_of "$1" "$2")
  out=$TEST_DIR/restore-$rp
  r=$("$VBAK" restore "$rp" --to-dir "$out" --wait --json) || fail "restore of $rp: $r"
  [[ $(jq -r .state <<<"$r") == succeeded ]] || fail "restore of $rp: $r"
  while IFS=$'\t' read -r key flat sha; do
    local files=("$out"/*-"$key".raw)
    local f=${files[0]}
    [[ ${#files[@]} == 1 && -f $f ]] || fail "restore of $2 has no single *-$key.raw: $(ls "$out")"
    cmp -s "$f" "$flat" || fail "$2 disk $key: restored bytes differ from $flat"
    [[ $(sha256sum <"$f" | cut -d' ' -f1) == "$sha" ]] || fail "$2 disk $key: digest differs"
    n=$((n + 1))
  done < <(jq -r --arg vm "$2" '.vms[] | select(.name == $vm) | .disks[] | [.key, .flat_file, .sha256] | @tsv' "$FIX.json")
  ((n > 0)) || fail "the fixture lists no disk of $2"
  echo "$n"
}

# tasks_agree JOB_ID EXPLAIN_JSON [AGENT ROUTE]: every done task of the job used explain's route
# for its disk x agent, with explain's reason (and, given, ran on AGENT over ROUTE). Prints the
# number of tasks checked (at least 2).
tasks_agree() {
  local t n=0 row
  while read -r t; do
    [[ -z ${3:-} || $(jq -r .agent <<<"$t") == "$3" ]] || fail "task ran on $(jq -r .agent <<<"$t"), not $3: $t"
    row=$(jq -c --arg d "$(jq -r .disk <<<"$t")" --arg a "$(jq -r .agent <<<"$t")" \
      '.[] | select(.disk == $d and .agent == $a)' <<<"$2")
    [[ $(jq -r .transport <<<"$t") == "$(jq -r .route <<<"$row")" ]] ||
      fail "task used $(jq -r .transport <<<"$t"), explain says $(jq -r .route <<<"$row"): $t"
    [[ -z ${4:-} || $(jq -r .transport <<<"$t") == "$4" ]] || fail "task used $(jq -r .transport <<<"$t"), not $4: $t"
    [[ $(jq -r .reason <<<"$t") == "$(jq -r .why <<<"$row")" ]] ||
      fail "task reason '$(jq -r .reason <<<"$t")' differs from explain's '$(jq -r .why <<<"$row")'"
    n=$((n + 1))
  done < <("$VBAK" job show "$1" --json | jq -c '.tasks[] | select(.state == "done")')
  ((n >= 2)) || fail "only $n tasks of job $1 checked"
  echo "$n"
}
