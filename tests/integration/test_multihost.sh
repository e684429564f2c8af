#!/usr/bin/env bash
# Hosts that are really apart: the coordinator, two ESXi hosts of a lab site (their disk servers),
# a Ceph RGW and four agents each in a network namespace of its own (own address in 10.213.0.0/24,
# own loopback), joined by a bridge in one more namespace. Nothing may rely on 127.0.0.1: the
# site is set up with `vbak site init` on the coordinator's address, agents enroll across the
# bridge, read disks over NBD with TLS (certificate for each host's address) and write an S3
# repository over HTTPS (certificate for the RGW's address). Then faults between hosts: one
# agent's link cut mid-job and restored; one agent's link 200 ms each way (a delay line of its
# own) and lossy. Each backup restores byte-identical. Every namespace goes on exit, even on failure.
source "$(dirname "$0")/lib.sh"

if [[ $(id -u) != 0 ]] || ! ip netns add "vbm-probe-$$" 2>/dev/null; then
  echo "SKIP: needs root and network namespaces (ip netns)"
  exit 77
fi
ip netns del "vbm-probe-$$"

# kill_netns NS: stops what runs in NS (only this test starts anything there) and deletes it
kill_netns() {
  local pids
  pids=$(ip netns pids "$1" 2>/dev/null || true)
  # shellcheck disable=SC2086
  [[ -z $pids ]] || kill -9 $pids 2>/dev/null || true
  ip netns del "$1" 2>/dev/null || true
}
# A run killed outright (a ctest timeout sends SIGKILL: no trap runs) leaves its namespaces,
# named after its pid: the next run removes those whose test is gone.
for ns in $(ip netns list | awk '$1 ~ /^vbm-[0-9]+-/ {print $1}'); do
  owner=${ns#vbm-}
  owner=${owner%%-*}
  kill -0 "$owner" 2>/dev/null || kill_netns "$ns"
done

NET=10.213.0
P="vbm-$$"                      # namespace prefix: unique per run
BR="$P-br"
declare -A ADDR=([coord]=$NET.10 [esx1]=$NET.21 [esx2]=$NET.22 [s3]=$NET.30
                 [agent1]=$NET.41 [agent2]=$NET.42 [agent3]=$NET.43 [agent4]=$NET.44)
declare -A PORT                  # node -> its veth's name in the bridge namespace
NODES=()

teardown_net() {
  local ns
  for ns in "${NODES[@]/#/$P-}" "$BR"; do kill_netns "$ns"; done
}
VB_ON_EXIT+=(teardown_net)

# on NODE CMD...: runs CMD in NODE's namespace
on() { local n=$1; shift; ip netns exec "$P-$n" "$@"; }

# node NODE: a namespace with its loopback up and a veth into the bridge, address ADDR[NODE]/24
node() {
  local n=$1 i=${#NODES[@]}
  NODES+=("$n")
  ip netns add "$P-$n"
  ip -n "$P-$n" link set lo up
  PORT[$n]="p$i"
  ip -n "$BR" link add "p$i" type veth peer name eth0 netns "$P-$n"
  ip -n "$BR" link set "p$i" master br0 up
  ip -n "$P-$n" addr add "${ADDR[$n]}/24" dev eth0
  ip -n "$P-$n" link set eth0 up
}

ip netns add "$BR"
ip -n "$BR" link add br0 type bridge
ip -n "$BR" link set br0 up
for n in coord esx1 esx2 s3 agent1 agent2 agent3 agent4; do node "$n"; done
on agent1 ip -4 -o addr show | awk '{print $4}' | sort | tr '\n' ' ' | grep -qx "${ADDR[agent1]}/24 127.0.0.1/8 " \
  || fail "agent1's namespace has other addresses: $(on agent1 ip -o addr show)"

# The CLI is the admin's, on the coordinator's host: every vbak command runs there.
printf '#!/bin/sh\nexec ip netns exec %s %s "$@"\n' "$P-coord" "$VB_BIN/vbak" >"$TEST_DIR/vbak"
chmod +x "$TEST_DIR/vbak"
VBAK="$TEST_DIR/vbak"

# The lab site: esx-01 and esx-02 have addresses of their own, each serves its disks there.
"$VBAK" lab create "$SITE" --vms 2 --proxies 1 --disk-size 16M \
  --host-address "esx-01=${ADDR[esx1]}" --host-address "esx-02=${ADDR[esx2]}" >/dev/null \
  || fail "lab create with host addresses"
site_json | jq -e --arg a "${ADDR[esx1]}" '.vms[] | select(.host == "esx-01") | .disks[0].nbds_uri | startswith("nbds://" + $a + ":")' >/dev/null \
  || fail "disks of esx-01 are not served on its address: $(site_json | jq -c '[.vms[].disks[].nbds_uri]')"
on esx1 "$VB_BIN/vbak" lab up "$SITE" --host esx-01 >/dev/null || fail "esx-01's disk servers"
on esx2 "$VB_BIN/vbak" lab up "$SITE" --host esx-02 >/dev/null || fail "esx-02's disk servers"
on esx1 ss -ltnH | awk '{print $4}' | grep -v "^${ADDR[esx1]}:" && fail "esx-01 listens beyond its address"
pass "[${SECONDS}s] each ESXi host serves its disks on its own address only (NBD, NBD over TLS)"

# The object store, listening on its own address with a certificate for it.
RGW="$TEST_DIR/rgw"
on s3 "$VB_SRC/tests/tools/rgw" start "$RGW" --tls --addr "${ADDR[s3]}" >/dev/null || fail "rgw start"
VB_ON_EXIT+=("'$VB_SRC/tests/tools/rgw' stop '$RGW'")
# shellcheck disable=SC1091
source "$RGW/env"
CRED="$TEST_DIR/s3.cred"
printf 'access_key_id = "%s"\nsecret_access_key = "%s"\n' "$VB_RGW_ACCESS_KEY" "$VB_RGW_SECRET_KEY" >"$CRED"
chmod 600 "$CRED"
REPO="s3://vbak/site?endpoint=$VB_RGW_TLS_ENDPOINT&ca=$VB_RGW_CA"

# The coordinator's site: keys, token, configs on its address; the repository on S3.
S="$TEST_DIR/prod"
export VBAK_CONFIG="$S/vbak.conf"
"$VBAK" site init "$S" --agent-endpoint "tcp://${ADDR[coord]}:7110" \
  --control-endpoint "tcp://${ADDR[coord]}:7111" --provider lab --repository "$REPO" >/dev/null \
  || fail "site init"
printf 'site = "%s"\nrepository_credentials_file = "%s"\nmetrics_endpoint = "%s:9464"\n' \
  "$SITE" "$CRED" "${ADDR[coord]}" >>"$S/coordinator.conf"
"$VBAK" repo init "$REPO" --credentials "$CRED" --create-bucket --chunk-size 256K >/dev/null \
  || fail "repo init on the RGW across the bridge"
# liveness 6 x 500 ms: the 3 s of silence the defaults allow (1000 ms x 3); a heartbeat lost on
# agent2's link (400 ms round trip, 1 % loss) comes again a second or more later
on coord "$VB_BIN/vbak-coordinator" --config "$S/coordinator.conf" --heartbeat_interval_ms=500 \
  --liveness=6 --task_bytes=8388608 --retry_delay_ms=200 --metrics_refresh_ms=500 >"$SITE/log/coord.log" 2>&1 &
VB_PIDS+=($!)
wait_until 15 "the coordinator answers on ${ADDR[coord]}" "$VBAK" status

declare -A HOST=([agent1]=esx-01 [agent2]=esx-02 [agent3]=esx-03 [agent4]=esx-05)
for a in agent1 agent2 agent3 agent4; do
  "$VBAK" site agent-conf "$S" "$a" --host "${HOST[$a]}" --slots 2 --state-dir "$TEST_DIR/state/$a" \
    >"$TEST_DIR/$a.conf" || fail "agent-conf $a"
  # network transports only: every read and write crosses the bridge; each agent stands for a
  # machine of its own (they share this one's machine id, and would share its task budget)
  printf 'transports = "nbdssl,nbd"\nrepository_credentials_file = "%s"\nreconnect_initial_ms = "200"\nreconnect_max_ms = "1000"\nmachine = "%s"\n' \
    "$CRED" "$a" >>"$TEST_DIR/$a.conf"
  on "$a" "$VB_BIN/vbak-agent" --config "$TEST_DIR/$a.conf" >"$SITE/log/$a.log" 2>&1 &
  VB_PIDS+=($!)
done
wait_until 20 "4 agents enrolled and online" has_count online 4
scrape_sees_4() { on agent3 curl -sf "http://${ADDR[coord]}:9464/metrics" | grep -q '^vbak_agents{state="online"} 4'; }
wait_until 15 "/metrics, scraped from another host, counts 4 agents online" scrape_sees_4
pass "[${SECONDS}s] site init on ${ADDR[coord]}: 4 agents enroll across the bridge (CURVE), /metrics answers another host"

# backup_check TAG VM...: each VM's disks saved, backed up full (--wait), restored, compared
backup_check() {
  local tag=$1 job vm
  shift
  save_content "$tag"
  job=$(backup_json "$@" --full) || fail "$tag: backup: $job"
  [[ $(jq -r .state <<<"$job") == succeeded ]] || fail "$tag: backup did not succeed: $job"
  for vm in "$@"; do check_restore "$(rp_of "$job" "$vm")" "$tag"; done
  LAST_JOB=$job
}
# tasks_of JOB_ID: its tasks as "agent transport state attempts" lines
tasks_of() { "$VBAK" job show "$1" --json | jq -r '.tasks[] | [.agent, .transport, .state, .attempts] | @tsv'; }

backup_check clean vm-vmfs-01 vm-nfs-01
job=$(jq -r .id <<<"$LAST_JOB")
[[ -z $(tasks_of "$job" | awk '$2 != "nbdssl"') ]] || fail "a task read locally: $(tasks_of "$job")"
[[ $(tasks_of "$job" | cut -f1 | sort -u | wc -l) -ge 3 ]] || fail "tasks not spread: $(tasks_of "$job")"
pass "[${SECONDS}s] backup over NBDSSL (per-host certificates) by $(tasks_of "$job" | cut -f1 | sort -u | wc -l) agents into S3 across hosts restores byte-identical"

# Fault 1: agent1's link is slowed (so its tasks last), cut while it runs a task, then restored.
slow() { # NODE RATE [LATENCY]: a token bucket on both ends of NODE's link
  ip netns exec "$BR" tc qdisc replace dev "${PORT[$1]}" root tbf rate "$2" burst 32kb latency "${3:-400ms}"
  on "$1" tc qdisc replace dev eth0 root tbf rate "$2" burst 32kb latency "${3:-400ms}"
}
unslow() { ip netns exec "$BR" tc qdisc del dev "${PORT[$1]}" root 2>/dev/null || true; on "$1" tc qdisc del dev eth0 root 2>/dev/null || true; }
slow agent1 8mbit
for vm in vm-vmfs-01 vm-nfs-01; do "$VBAK" lab mutate "$SITE" "$vm" --percent 10 >/dev/null; done
save_content cut
job=$("$VBAK" backup vm-vmfs-01 vm-nfs-01 --full --json | jq -r .job)
agent1_running() { tasks_of "$job" | awk '$1 == "agent1" && $3 == "running"' | grep -q .; }
wait_until 30 "agent1 running a task of job $job" agent1_running
ip -n "$BR" link set "${PORT[agent1]}" down
# mid-job: checked at the cut (once agent1 is lost, the others may finish its task again before
# a poll sees the loss: a task of this site is a second of work)
"$VBAK" job show "$job" --json | jq -e '.state == "running"' >/dev/null \
  || fail "the job ended before the cut took effect: the cut was not mid-job"
wait_until 15 "agent1 lost while its link is down" state_is agent1 lost
ip -n "$BR" link set "${PORT[agent1]}" up
unslow agent1
wait_until 60 "job $job ends" sh -c "'$VBAK' job show $job --json | jq -e '.state != \"running\"'"
jobj=$("$VBAK" job show "$job" --json)
[[ $(jq -r .state <<<"$jobj") == succeeded ]] || fail "job with a cut link: $(jq -c '{state, error}' <<<"$jobj")"
wait_until 20 "agent1 online again after its link came back" state_is agent1 online
for vm in vm-vmfs-01 vm-nfs-01; do check_restore "$(rp_of "$jobj" "$vm")" cut; done
pass "[${SECONDS}s] an agent's link cut mid-job (agent lost, its tasks run elsewhere) and restored: the job succeeds, restores byte-identical, the agent is back"

# Fault 2: agent2's link takes 200 ms each way and drops 1 % of packets each way. The kernel's
# netem is not everywhere (not on this one), so the delay is a wire of its own: agent2's port
# leaves the bridge for a namespace where tests/tools/vbak-delayline holds every frame 200 ms on
# its way to a new bridge port and back. The loss is nftables' (random 1 % both ways).
declare -A DELAY_PID
delay_link() { # delay_link NODE MS
  local n=$1 w="$P-$1-wire" q="q${PORT[$1]#p}"
  NODES+=("$n-wire")
  ip netns add "$w"
  ip netns exec "$w" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  ip -n "$BR" link set "${PORT[$n]}" nomaster
  ip -n "$BR" link set "${PORT[$n]}" netns "$w"
  ip -n "$w" link set "${PORT[$n]}" name wa
  ip -n "$w" link add wb type veth peer name "$q" netns "$BR"
  ip -n "$BR" link set "$q" master br0 up
  ip -n "$w" link set wa up
  ip -n "$w" link set wb up
  ip netns exec "$w" "$VB_TESTS_BIN/vbak-delayline" wa wb "$2" >"$SITE/log/delayline-$n.log" 2>&1 &
  DELAY_PID[$n]=$!
  VB_PIDS+=($!)
  PORT[$n]=$q
}
undelay_link() { # undelay_link NODE: a plain bridge in its wire namespace takes the delay line's place
  local w="$P-$1-wire"
  kill "${DELAY_PID[$1]}"
  wait "${DELAY_PID[$1]}" 2>/dev/null || true # no frame forwarded twice while the bridge comes up
  ip -n "$w" link add br0 type bridge
  ip -n "$w" link set wa master br0
  ip -n "$w" link set wb master br0
  ip -n "$w" link set br0 up
}
delay_link agent2 200
on agent2 nft -f - <<'NFT' || fail "nft: cannot drop packets in agent2's namespace"
table inet vbloss {
  chain in { type filter hook input priority 0; policy accept; numgen random mod 100 < 1 drop; }
  chain out { type filter hook output priority 0; policy accept; numgen random mod 100 < 1 drop; }
}
NFT
# the fault is in place: a TCP handshake from agent2 to the coordinator takes a round trip, 400 ms
connect_s() { on "$1" curl -s -o /dev/null -w '%{time_connect}' "http://${ADDR[coord]}:9464/metrics"; }
wait_until 15 "agent2 reaches the coordinator through the delay line" connect_s agent2
rtt=$(connect_s agent2)
awk -v t="$rtt" 'BEGIN { exit !(t >= 0.39) }' || fail "agent2's round trip is ${rtt}s: the delay line is not in place"
fault="200 ms each way (a TCP connect from agent2 takes ${rtt}s, from agent3 $(connect_s agent3)s) and 1 % loss"
# At 400 ms a round trip and 1 % loss a TCP stream carries some 40 KB/s (Mathis: MSS/RTT x
# 1.22/sqrt(p)), so the backup is small, and agent2 runs all of it: the other agents stop.
for a in agent1 agent3 agent4; do kill $(ip netns pids "$P-$a"); done # the agent runs alone there
wait_until 20 "agent2 the only agent online" has_count online 1
state_is agent2 online || fail "agent2 is not the agent left online"
"$VBAK" lab mutate "$SITE" vm-nfs-01 --percent 1 >/dev/null
save_content lossy
t0=$SECONDS
jobj=$(backup_json vm-nfs-01) || fail "backup through agent2's slow, lossy link: $jobj"
[[ $(jq -r .state <<<"$jobj") == succeeded ]] || fail "backup through agent2's slow, lossy link: $jobj"
job=$(jq -r .id <<<"$jobj")
[[ -z $(tasks_of "$job" | awk '$1 != "agent2" || $3 != "done"') ]] \
  || fail "tasks not all done by agent2 through its slow, lossy link: $(tasks_of "$job")"
fault+=" (an incremental backup of $(tasks_of "$job" | wc -l) task(s) took $((SECONDS - t0)) s)"
# the restore need not crawl through it too: agent2's link is whole again
undelay_link agent2
on agent2 nft delete table inet vbloss
check_restore "$(rp_of "$jobj" vm-nfs-01)" lossy
pass "[${SECONDS}s] $fault on an agent's link: the job succeeds and restores byte-identical"

# lab down stops the hosts' own disk servers too (their pid files name them)
"$VBAK" lab down "$SITE" >/dev/null || fail "lab down"
[[ -z $(on esx1 ss -ltnH) && -z $(on esx2 ss -ltnH) ]] || fail "host disk servers still listen after lab down"
pass "[${SECONDS}s] lab down stops the disk servers of hosts with their own address"
