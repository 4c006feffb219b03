#!/usr/bin/env bash
# Installs the baseline systems baton-bench compares Baton against:
# etcd 3.4 (Debian package etcd-server) and ZooKeeper 3.8 (Debian package
# zookeeper; needs a Java runtime, which the zookeeper package pulls in), plus
# protoc (protobuf-compiler, with the well-known types from libprotobuf-dev),
# which the etcd-client crate's build script needs for
# `cargo build -p baton-tests --features baselines`, and the DejaVu fonts the
# PNG charts use for their labels. etcd-client (etcdctl) is for poking at a
# kept cluster by hand.
#
# Idempotent: installs nothing if everything is already installed. Never
# leaves a system service running or enabled: baton-bench starts its own
# instances in temporary folders on free loopback ports.
#
#   sudo scripts/install-baselines.sh
set -euo pipefail

have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

if have etcd-server && have zookeeper && have protobuf-compiler && have libprotobuf-dev && have fonts-dejavu-core; then
    echo "etcd-server, zookeeper, protobuf-compiler, libprotobuf-dev and fonts-dejavu-core are already installed"
else
    if [ "$(id -u)" -ne 0 ]; then
        echo "run as root (apt-get install)" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    # policy-rc.d exit 101 tells invoke-rc.d not to start services while the
    # packages are installed (in a container without systemd this also avoids
    # failing postinst scripts).
    created_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        created_policy=1
    fi
    trap 'if [ "$created_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi' EXIT
    apt-get update
    apt-get install -y --no-install-recommends etcd-server etcd-client zookeeper protobuf-compiler libprotobuf-dev fonts-dejavu-core
fi

# If a package's service did start anyway (a host with systemd), stop and
# disable it: the bench must own every instance it measures.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    for unit in etcd zookeeper; do
        systemctl disable --now "$unit" >/dev/null 2>&1 || true
    done
fi
for pidfile in /run/etcd.pid /run/zookeeper/zookeeper.pid /var/run/zookeeper/zookeeper_server.pid; do
    [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
done

echo "etcd:      $(command -v etcd || echo missing) $(etcd --version 2>/dev/null | head -1)"
echo "zookeeper: $(ls /usr/share/java/zookeeper.jar 2>/dev/null || echo missing)"
echo "protoc:    $(command -v protoc || echo missing) $(protoc --version 2>/dev/null)"
