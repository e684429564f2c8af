#!/usr/bin/env bash
# Backups of vSphere VMs through the coordinator: a coordinator with provider = "vsphere" against
# the vCenter simulator fixture snapshots a VM, agents read its disks' flat files over the
# datastore HTTP file service (route mode "vsfile"), and `vbak restore --to-dir` gives back the
# bytes the fixture wrote into them. The simulator has no changed block tracking: every backup is
# full and says why. A wrong thumbprint or password stops the coordinator at start.
source "$(dirname "$0")/lib.sh"

FIXTURE=$VB_TESTS_BIN/vcsim-fixture
[[ -x $FIXTURE ]] || fail "$FIXTURE is missing: install golang-go and golang-github-vmware-govmomi-dev (deploy/install-deps.sh) and rebuild"
command -v jq >/dev/null || fail "jq is missing"

# The simulator (same flags as vsphere_lib.sh's start_fixture); stopped before lib.sh's cleanup.
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

# A lab site gives keys, token, agents and a repository; its coordinator talks to the simulator.
"$VBAK" lab create "$SITE" --heartbeat-ms 200 >/dev/null
PW=$TEST_DIR/vsphere.password
(umask 077 && fx .password >"$PW")
CONF=$SITE/coordinator.conf
sed -i '/^site = /d; /^provider = /d' "$CONF"
cp "$CONF" "$TEST_DIR/base.conf"
cat >>"$CONF" <<EOF
provider = "vsphere"
vsphere_url = "$(fx .url)"
vsphere_user = "$(fx .user)"
vsphere_password_file = "$PW"
vsphere_ca_file = "$(fx .ca_file)"
EOF

# ---- refusals at start: wrong thumbprint, wrong password ----
wrong=00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF
bad_conf() { # bad_conf NAME LINES...: the base config with its own catalog and the given keys
  local f=$TEST_DIR/$1.conf
  shift
  sed "s|^catalog = .*|catalog = \"$TEST_DIR/$(basename "$f" .conf).db\"|; /^pid_file = /d" \
    "$TEST_DIR/base.conf" >"$f"
  printf '%s\n' 'provider = "vsphere"' "vsphere_url = \"$(fx .url)\"" "vsphere_user = \"$(fx .user)\"" "$@" >>"$f"
  echo "$f"
}
f=$(bad_conf thumb "vsphere_password_file = \"$PW\"" "vsphere_thumbprint = \"$wrong\"")
if out=$("$VB_BIN/vbak-coordinator" --config "$f" 2>&1); then fail "the coordinator started with a wrong thumbprint"; fi
# (other lines are log lines; the refusal is the one "vbak-coordinator: ..." line)
err=$(grep '^vbak-coordinator: ' <<<"$out") || fail "no refusal line: $out"
grep -q "expected SHA-256 $wrong" <<<"$err" && grep -q "server presented $(fx .thumbprint)" <<<"$err" ||
  fail "wrong thumbprint message: $out"
[[ $(wc -l <<<"$err") == 1 ]] || fail "the refusal is not one line: $out"
pass "wrong thumbprint: the coordinator refuses to start ($err)"
# the right thumbprint gets past the login, as far as binding its sockets (made to clash here)
agent_ep=$(conf_value "$TEST_DIR/base.conf" agent_endpoint)
f=$(bad_conf thumb_ok "vsphere_password_file = \"$PW\"" "vsphere_thumbprint = \"$(fx .thumbprint)\"")
sed -i "s|^control_endpoint = .*|control_endpoint = \"$agent_ep\"|" "$f"
if out=$("$VB_BIN/vbak-coordinator" --config "$f" 2>&1); then fail "two sockets bound one endpoint"; fi
grep -q "cannot listen on $agent_ep" <<<"$out" || fail "with the right thumbprint the coordinator should get as far as its sockets: $out"
pass "the right thumbprint logs in"
echo 'not the password' >"$TEST_DIR/bad.password"
f=$(bad_conf pass "vsphere_password_file = \"$TEST_DIR/bad.password\"" "vsphere_ca_file = \"$(fx .ca_file)\"")
if out=$("$VB_BIN/vbak-coordinator" --config "$f" 2>&1); then fail "the coordinator started with a wrong password"; fi
err=$(grep '^vbak-coordinator: ' <<<"$out") || fail "no refusal line: $out"
grep -q "wrong user name or password" <<<"$err" && [[ $(wc -l <<<"$err") == 1 ]] || fail "wrong password message: $out"
pass "wrong password: the coordinator refuses to start ($err)"

# ---- backups of simulator VMs through the agents ----
"$VBAK" lab up "$SITE" >/dev/null
wait_until 10 "four agents online" has_count online 4

vm=vbak-vm1
job=$(backup_json "$vm")
[[ $(jq -r .state <<<"$job") == succeeded ]] || fail "backup of $vm: $job"
[[ $(jq -r '.vm_details[0].mode' <<<"$job") == full ]] || fail "$vm not backed up full: $job"
jq -r '.vm_details[0].mode_reason' <<<"$job" | grep -q "changed block tracking is unavailable for disk" ||
  fail "the full backup does not say change tracking is unavailable: $job"
[[ $(jq -r '.vm_details[0].snapshot_state' <<<"$job") == removed ]] || fail "snapshot left: $job"
grep -q "allocated-blocks-unavailable mode=vsfile" "$SITE"/log/agent-*.log ||
  fail "no agent said the file service has no allocation map"
pass "$vm backed up full over the file service: $(jq -r '.vm_details[0].mode_reason' <<<"$job")"

# a second backup is full again, for the same reason (the simulator has no change IDs to keep)
job2=$(backup_json "$vm")
[[ $(jq -r .state <<<"$job2") == succeeded && $(jq -r '.vm_details[0].mode' <<<"$job2") == full ]] ||
  fail "second backup of $vm: $job2"
jq -r '.vm_details[0].mode_reason' <<<"$job2" | grep -q "changed block tracking is unavailable for disk" ||
  fail "second backup's reason: $job2"
pass "the next backup is full too, and says why"

# --full: the reason is that, one sentence, not what change tracking would have said
jobf=$(backup_json "$vm" --full)
[[ $(jq -r .state <<<"$jobf") == succeeded ]] || fail "--full backup of $vm: $jobf"
[[ $(jq -r '.vm_details[0].mode_reason' <<<"$jobf") == "a full backup was asked for" ]] ||
  fail "the reason of a --full backup: $(jq -r '.vm_details[0].mode_reason' <<<"$jobf")"
pass "a --full backup says: a full backup was asked for"

# restore_and_compare JOB VM: restores the VM's restore point to a directory; every disk must
# equal the flat file the fixture wrote (and the digest it published).
restore_and_compare() {
  local rp out n=0 key flat sha
  rp=$(rp_of "$1" "$2")
  out=$TEST_DIR/restore-$rp
  local r
  r=$("$VBAK" restore "$rp" --to-dir "$out" --wait --json) || fail "restore of $rp: $r"
  [[ $(jq -r .state <<<"$r") == succeeded ]] || fail "restore of $rp: $r"
  while IFS=$'\t' read -r key flat sha; do
    local files=("$out"/*-"$key".raw) # the VM's name is made safe for a file name
    local f=${files[0]}
    [[ ${#files[@]} == 1 && -f $f ]] || fail "restore of $2 has no single *-$key.raw: $(ls "$out")"
    cmp -s "$f" "$flat" || fail "$2 disk $key: restored bytes differ from $flat"
    [[ $(sha256sum <"$f" | cut -d' ' -f1) == "$sha" ]] || fail "$2 disk $key: digest differs"
    n=$((n + 1))
  done < <(jq -r --arg vm "$2" '.vms[] | select(.name == $vm) | .disks[] | [.key, .flat_file, .sha256] | @tsv' "$FIX.json")
  ((n > 0)) || fail "the fixture lists no disk of $2"
  echo "$n"
}
n=$(restore_and_compare "$job" "$vm")
pass "$vm: $n disks restored byte for byte from the first restore point"
n=$(restore_and_compare "$job2" "$vm")
pass "$vm: $n disks restored byte for byte from the second restore point"

# a VM and disk whose names hold a space, '%', '#', '&' and a non-ASCII letter
sp=$(fx '.vms[] | select(.name | startswith("sp")) | .name')
job3=$(backup_json "$sp")
[[ $(jq -r .state <<<"$job3") == succeeded ]] || fail "backup of '$sp': $job3"
n=$(restore_and_compare "$job3" "$sp")
pass "'$sp' ($(fx '.vms[] | select(.name | startswith("sp")) | .disks[0].flat_path')) backed up and restored byte for byte"

# a restore into the vSphere VM is refused by the read-only route, with the reason
r=$("$VBAK" restore "$(rp_of "$job" "$vm")" --to-vm --wait --json) || true
[[ $(jq -r .state <<<"$r") == failed ]] || fail "a restore into the vSphere VM did not fail: $r"
jq -r .error <<<"$r" | grep -q "route is read-only" || fail "no reason for the refused restore: $r"
# the job says the tasks' own error, at once: the route is refused for what it is
jq -r .error <<<"$r" | grep -q "no online agent may reach" && fail "the job's error hides the cause: $r"
"$VBAK" job show "$(jq .id <<<"$r")" --json | jq -e '[.tasks[] | select(.state == "failed")] |
  length > 0 and all(.attempts == 1)' >/dev/null || fail "the refused restore was retried: $r"
pass "restore into the vSphere VM refused: the file service route is read-only"
