#!/usr/bin/env bash
# Install everything vbak's build, tests, demo and benchmarks need on Debian 12.
# Idempotent: packages already present are skipped. Run as root (or with sudo available).
set -euo pipefail

packages=(
  # build
  build-essential cmake pkg-config git
  libczmq-dev libzmq3-dev libsodium-dev
  libprotobuf-c-dev protobuf-c-compiler
  libsqlite3-dev libcurl4-openssl-dev libexpat1-dev libssl-dev
  libnbd-dev libzstd-dev libjansson-dev libcriterion-dev libmicrohttpd-dev
  # lab site, tests and demo
  nbdkit nbdkit-plugin-dev libnbd-bin openssl qemu-utils cryptsetup-bin
  sqlite3 jq procps iproute2 util-linux e2fsprogs
  # multi-host test: packet loss between network namespaces (the kernel may lack netem)
  nftables
  # guest file systems: the lab's (sfdisk, mke2fs, debugfs), and file-level restore (libguestfs,
  # whose appliance needs a kernel; ntfs-3g for NTFS guests)
  fdisk ntfs-3g libguestfs-dev guestfish linux-image-amd64
  # metrics tests: promtool and a real Prometheus
  prometheus curl
  # vSphere simulator fixture (govmomi)
  golang-go golang-github-vmware-govmomi-dev
  # benchmarks: the tools users would otherwise use
  restic borgbackup time
  # S3 repository tests and benchmarks: a single-node Ceph RADOS Gateway
  ceph-mon ceph-osd radosgw
  # fuzzing (libFuzzer: clang and its runtime)
  clang libclang-rt-14-dev
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "install-deps: run as root or install sudo" >&2; exit 1; }
  sudo_cmd=(sudo)
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-deps: done"
