#!/usr/bin/env bash
# Install the Debian packages a real test node (python -m tests.cluster up --kubelet) and
# the image builds (scripts/build-images.sh) need, on Debian 12 as root:
#   containerd, runc, CNI plugins, iptables, iproute2, util-linux (nsenter)  -> the node
#   buildah, mmdebstrap                                                      -> images
# Idempotent: when everything is installed it prints nothing and touches nothing
# (no `apt-get update`), so CI's warm runs cost nothing.
set -euo pipefail

PACKAGES=(containerd runc containernetworking-plugins iptables iproute2 util-linux
          mmdebstrap buildah)

die() { echo "install-node-deps: ERROR: $*" >&2; exit 1; }

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' \
    || missing+=("$p")
done
[ "${#missing[@]}" -eq 0 ] && exit 0

[ "$(id -u)" = 0 ] || die "missing packages ${missing[*]}; run as root (apt-get install)"
command -v apt-get >/dev/null || die "missing packages ${missing[*]} and no apt-get (Debian 12 expected)"
echo "install-node-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Other jobs on the machine may hold the dpkg lock for a while: wait instead of failing.
APT=(apt-get -qq -o DPkg::Lock::Timeout=600)
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
"${APT[@]}" update >"$LOG" 2>&1 || { cat "$LOG" >&2; die "apt-get update failed"; }
"${APT[@]}" install -y --no-install-recommends "${missing[@]}" >"$LOG" 2>&1 \
  || { cat "$LOG" >&2; die "apt-get install ${missing[*]} failed"; }
# Debian's containerd ships only a systemd unit: without systemd nothing starts here;
# each test node runs its own containerd (tests/cluster/real_node.py).
