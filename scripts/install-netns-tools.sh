#!/usr/bin/env bash
# Installs what the kernel-level network faults need (tests/src/nemesis/netns.rs:
# brokers in network namespaces, iptables loss and one-way drops, tc netem
# delay): iproute2 (ip, tc) and iptables, when missing. Idempotent.
#
# Only as root (the faults need root anyway). Without root it says so and
# succeeds: the netns tests then skip with a message saying why. A kernel
# without the sch_netem qdisc is reported too: the netns delay fault then
# falls back to the proxy's delay (said so in the history).
set -euo pipefail
if [ "$(id -u)" != 0 ]; then
  echo "not root: the network-namespace fault tests will skip (they need root)"
  exit 0
fi
missing=()
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v tc >/dev/null 2>&1 || missing+=(iproute2)
command -v iptables >/dev/null 2>&1 || missing+=(iptables)
if ((${#missing[@]} == 0)); then
  echo "ip, tc, iptables: present ($(ip -V 2>&1 | head -1); $(iptables --version))"
else
  apt-get update -qq
  # shellcheck disable=SC2068
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(printf '%s\n' "${missing[@]}" | sort -u)
fi
probe="baton-probe-$$"
if ip netns add "$probe" 2>/dev/null; then
  if ip netns exec "$probe" tc qdisc add dev lo root netem delay 1ms 2>/dev/null; then
    echo "tc netem: supported by this kernel"
  else
    echo "tc netem: NOT supported by this kernel (no sch_netem); the netns delay fault uses the proxy instead"
  fi
  ip netns del "$probe"
else
  echo "network namespaces: cannot be created here; the netns fault tests will skip"
fi
