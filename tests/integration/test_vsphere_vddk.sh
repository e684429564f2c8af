#!/usr/bin/env bash
# Backups of a vSphere VM through VixDiskLib: a coordinator with provider = "vsphere" against the
# vCenter simulator fixture gives every disk vddk:// routes (vCenter, vm=moref=, the snapshot's
# moref, the datastore path, the server's thumbprint, a password file) beside the file-service
# route. agent-1 has vddk_libdir (the fake library, with a site file written from the simulator's
# inventory: credentials, VMs and their disks, datastore directories and types; the proxy sees no
# LUN and mounts no datastore); agent-2 has none. `vbak explain` and the tasks agree: agent-1
# reads over NBDSSL through VixDiskLib (the mode VDDK reported), agent-2 over the file service
# and says why; both restore byte for byte to the simulator's flat files.
source "$(dirname "$0")/lib.sh"

FIXTURE=$VB_TESTS_BIN/vcsim-fixture
FAKE=$VB_TESTS_BIN/fakevddk/lib64/libvixDiskLib.so
[[ -x $FIXTURE ]] || fail "$FIXTURE is missing: install golang-go and golang-github-vmware-govmomi-dev (deploy/install-deps.sh) and rebuild"
[[ -f $FAKE ]] || fail "$FAKE is missing"
command -v jq >/dev/null || fail "jq is missing"

FIX=$TEST_DIR/vcsim
FIX_PID=
stop_fixture() {
  if [[ -n $FIX_PID ]]; then
    kill "$FIX_PID" 2>/dev/null || true
    wait "$FIX_PID" 2>/dev/null || true
  fi
}
trap 'rc=$?; stop_fixture; (exit $rc); cleanup' EXIT
"$FIXTURE" -dir "$FIX" -info "$FIX.json" >"$FIX.out" 2>"$FIX.log" &
FIX_PID=$!
fixture_ready() { [[ -s $FIX.json ]] || { kill -0 "$FIX_PID" && false; }; }
wait_until 60 "the vCenter simulator" fixture_ready
[[ -s $FIX.json ]] || fail "the simulator exited: $(cat "$FIX.log")"
fx() { jq -r "$1" "$FIX.json"; }

"$VBAK" lab create "$SITE" --proxies 2 --heartbeat-ms 200 >/dev/null
PW=$TEST_DIR/vsphere.password
(umask 077 && fx .password >"$PW")
CONF=$SITE/coordinator.conf
sed -i '/^site = /d; /^provider = /d' "$CONF"
cat >>"$CONF" <<EOC
provider = "vsphere"
vsphere_url = "$(fx .url)"
vsphere_user = "$(fx .user)"
vsphere_password_file = "$PW"
vsphere_ca_file = "$(fx .ca_file)"
EOC

# A VDDK install for agent-1: the fake library and what the vCenter knows, from the simulator.
VDDK=$TEST_DIR/vddk
mkdir -p "$VDDK/lib64"
ln -s "$FAKE" "$VDDK/lib64/libvixDiskLib.so"
{
  echo "user = \"$(fx .user)\""
  echo "password_file = \"$PW\""
  echo "vbak.fakeServerThumbprint = \"$(fx .thumbprint)\""
  echo 'proxy_luns = ""'
  echo 'proxy_datastores = ""'
  jq -r '.datastores[] | "datastore.\(.name).dir = \"\(.dir)\"", "datastore.\(.name).type = \"\(.type)\""' "$FIX.json"
  jq -r '.vms[] | .id as $id | .disks[] | "vm.\($id).disk = \"\(.path)\""' "$FIX.json"
} >"$VDDK/fakevddk-site.conf"
echo "vddk_libdir = \"$VDDK\"" >>"$SITE/agent-1.conf"

"$VBAK" lab up "$SITE" >/dev/null
wait_until 10 "two agents online" has_count online 2
[[ $(agents_json | jq -c '[.[] | {name, vddk}] | sort_by(.name)') == '[{"name":"agent-1","vddk":true},{"name":"agent-2","vddk":false}]' ]] ||
  fail "agents do not say which has VDDK: $(agents_json | jq -c '[.[] | {name, vddk}]')"
pass "agent-1 registers with VDDK, agent-2 without"

vm=vbak-vm1
ex=$("$VBAK" explain "$vm" --json)
jq -e '[.[] | select(.agent == "agent-1")] | length == 2 and all(.[]; .chosen == "nbdssl" and .route == "nbdssl"
  and (.why | test("NFC over TLS")))' <<<"$ex" >/dev/null ||
  fail "explain for agent-1 (VDDK, no LUN, no datastore): $ex"
no_vddk="agent agent-2 has no vddk_libdir: VixDiskLib modes unavailable; the datastore file service is used"
jq -e --arg s "$no_vddk" '[.[] | select(.agent == "agent-2")] | length == 2 and all(.[]; .chosen == "nbdssl"
  and .route == "vsfile" and (.why | contains($s))
  and ((.refused[] | select(.mode == "nbd") | .reason) == $s))' <<<"$ex" >/dev/null ||
  fail "explain for agent-2 (no vddk_libdir) does not say why it uses the file service: $ex"
pass "explain: agent-1 nbdssl through VixDiskLib, agent-2 the file service ($no_vddk)"

# stop_agent N / start_agents: run a backup on one agent at a time
stop_agent() {
  local pid
  pid=$(cat "$(conf_value "$SITE/agent-$1.conf" pid_file)")
  kill "$pid"
  wait_until 10 "agent-$1 lost" state_is "agent-$1" lost
}

# tasks_agree JOB AGENT ROUTE: every done task of the job ran on AGENT with ROUTE, which is
# explain's route for that disk x agent, with explain's reason
tasks_agree() {
  local tasks t n=0
  tasks=$("$VBAK" job show "$1" --json | jq -c '.tasks[] | select(.state == "done")')
  while read -r t; do
    local row
    [[ $(jq -r .agent <<<"$t") == "$2" ]] || fail "task ran on $(jq -r .agent <<<"$t"), not $2: $t"
    row=$(jq -c --arg d "$(jq -r .disk <<<"$t")" --arg a "$2" '.[] | select(.disk == $d and .agent == $a)' <<<"$ex")
    [[ $(jq -r .transport <<<"$t") == "$3" && $(jq -r .route <<<"$row") == "$3" ]] ||
      fail "task used $(jq -r .transport <<<"$t"), explain says $(jq -r .route <<<"$row"), expected $3: $t"
    [[ $(jq -r .reason <<<"$t") == "$(jq -r .why <<<"$row")" ]] ||
      fail "task reason '$(jq -r .reason <<<"$t")' differs from explain's '$(jq -r .why <<<"$row")'"
    n=$((n + 1))
  done <<<"$tasks"
  ((n >= 2)) || fail "only $n tasks of job $1"
  echo "$n"
}

# restore_and_compare JOB: the restore to a directory equals the simulator's flat files
restore_and_compare() {
  local rp out r key flat n=0
  rp=$(rp_of "$1" "$vm")
  out=$TEST_DIR/restore-$rp
  r=$("$VBAK" restore "$rp" --to-dir "$out" --wait --json) || fail "restore of $rp: $r"
  [[ $(jq -r .state <<<"$r") == succeeded ]] || fail "restore of $rp: $r"
  while IFS=$'\t' read -r key flat; do
    local files=("$out"/*-"$key".raw)
    [[ ${#files[@]} == 1 && -f ${files[0]} ]] || fail "no single *-$key.raw in $(ls "$out")"
    cmp -s "${files[0]}" "$flat" || fail "disk $key: restored bytes differ from $flat"
    n=$((n + 1))
  done < <(jq -r --arg vm "$vm" '.vms[] | select(.name == $vm) | .disks[] | [.key, .flat_file] | @tsv' "$FIX.json")
  ((n == 2)) || fail "$n disks compared"
}

# ---- agent-1 alone: VixDiskLib, NBDSSL ----
stop_agent 2
job=$(backup_json "$vm")
[[ $(jq -r .state <<<"$job") == succeeded ]] || fail "backup of $vm on agent-1: $job"
n=$(tasks_agree "$(jq .id <<<"$job")" agent-1 nbdssl)
grep -q 'vddk: opened file="\[vmfs-01\] vbak-vm1/vbak-vm1.vmdk" asked=nbdssl got=nbdssl' "$SITE/log/agent-1.log" ||
  fail "agent-1 did not open through VixDiskLib in mode nbdssl: $(grep vddk "$SITE/log/agent-1.log" | tail -5)"
restore_and_compare "$job"
pass "agent-1: $n tasks over nbdssl through VixDiskLib (as explain says), restored byte for byte"

# ---- agent-2 alone: the file service, as before ----
"$VBAK" lab up "$SITE" >/dev/null
wait_until 10 "agent-2 back" state_is agent-2 online
stop_agent 1
job2=$(backup_json "$vm")
[[ $(jq -r .state <<<"$job2") == succeeded ]] || fail "backup of $vm on agent-2: $job2"
n=$(tasks_agree "$(jq .id <<<"$job2")" agent-2 vsfile)
restore_and_compare "$job2"
pass "agent-2: $n tasks over the file service (as explain says, and why), restored byte for byte"
