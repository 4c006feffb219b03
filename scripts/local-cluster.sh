#!/usr/bin/env bash
# Starts a local Baton cluster: 3 controllers + 3 broker agents (sidecars) on
# loopback, embedded storage under one data folder, and a demo topic.
# Ctrl-C stops everything.
# Usage: scripts/local-cluster.sh [--refbrokers] [--plaintext] [DATA_DIR]
#   controllers: 127.0.0.1:7101-7103   agents' local API: 127.0.0.1:7201-7203
#   brokers advertise 127.0.0.1:9092-9094 (where a broker would listen)
#   --refbrokers: run three reference Kafka brokers (baton-refbroker, each
#   embedding the agent) instead of the agent sidecars; they listen for Kafka
#   clients on 127.0.0.1:9092-9094, so `kcat -b 127.0.0.1:9092 -L` works.
#   Every link runs mTLS with a development CA made on first start in
#   DATA_DIR/pki (`batonctl certs init`); batonctl below presents the admin
#   certificate. --plaintext runs without TLS or authentication instead.
set -euo pipefail
cd "$(dirname "$0")/.."
REFBROKERS=0
PLAINTEXT=0
while [ $# -gt 0 ]; do
  case "$1" in
    --refbrokers) REFBROKERS=1; shift ;;
    --plaintext) PLAINTEXT=1; shift ;;
    *) break ;;
  esac
done
DATA="${1:-.baton-local}"
PROFILE="${BATON_PROFILE:-release}"

echo "building ($PROFILE)..."
if [ "$PROFILE" = release ]; then cargo build --release --bins --quiet; else cargo build --bins --quiet; fi
BIN="${CARGO_TARGET_DIR:-target}/$PROFILE"

mkdir -p "$DATA/logs"
PKI="$DATA/pki"
# tls_env KIND NAME PREFIX: the environment that points a process at its files.
tls_env() {
  if [ "$PLAINTEXT" = 1 ]; then echo "${3}PLAINTEXT=true"; return; fi
  echo "${3}CA_FILE=$PKI/ca.pem ${3}CERT_FILE=$PKI/$1-$2.pem ${3}KEY_FILE=$PKI/$1-$2.key"
}
if [ "$PLAINTEXT" = 0 ] && [ ! -f "$PKI/ca.pem" ]; then
  "$BIN/batonctl" certs init --dir "$PKI" --controller-ids 1,2,3 --broker-ids 1,2,3 --admins admin --clients reader
fi
PIDS=()
cleanup() {
  echo; echo "stopping the cluster..."
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

PEERS="1=127.0.0.1:7101,2=127.0.0.1:7102,3=127.0.0.1:7103"
CONTROLLERS="127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103"
for i in 1 2 3; do
  env $(tls_env controller "$i" BATON_TLS__) "$BIN/baton-controller" --id "$i" --data-dir "$DATA/controller-$i" \
    --listen "127.0.0.1:710$i" --peers "$PEERS" >"$DATA/logs/controller-$i.log" 2>&1 &
  PIDS+=($!)
done
for i in 1 2 3; do
  if [ "$REFBROKERS" = 1 ]; then
    env $(tls_env broker "$i" BATON_AGENT_TLS_) "$BIN/baton-refbroker" --broker-id "$i" --controllers "$CONTROLLERS" \
      --listen "127.0.0.1:909$((i + 1))" --rack "rack-$i" \
      >"$DATA/logs/refbroker-$i.log" 2>&1 &
  else
    env $(tls_env broker "$i" BATON_AGENT_TLS_) "$BIN/baton-agent" --broker-id "$i" --controllers "$CONTROLLERS" \
      --advertised "127.0.0.1:909$((i + 1))" --listen "127.0.0.1:720$i" --rack "rack-$i" \
      >"$DATA/logs/agent-$i.log" 2>&1 &
  fi
  PIDS+=($!)
done

CTL="env $(tls_env admin admin BATON_TLS__) $BIN/batonctl --controllers $CONTROLLERS"
echo "waiting for a controller leader and three live brokers..."
for _ in $(seq 1 150); do
  alive=$($CTL broker list --output json 2>/dev/null | grep -o '"ALIVE"' | wc -l || true)
  [ "${alive:-0}" -ge 3 ] && break
  sleep 0.2
done
$CTL topic describe demo >/dev/null 2>&1 || $CTL topic create demo --partitions 6 --replication-factor 3 >/dev/null
echo
$CTL quorum status
echo
$CTL broker list
echo
$CTL topic describe demo
cat <<MSG

Baton is running (data and logs in $DATA/). Try:
  $CTL leader get demo 0
  $CTL leader watch
  kill -9 <pid of a broker>     # agent or reference broker pids: ${PIDS[*]:3}
Ctrl-C stops the cluster.
MSG
if [ "$REFBROKERS" = 1 ]; then
  cat <<MSG
Reference Kafka brokers listen on 127.0.0.1:9092-9094 (logs in $DATA/logs/refbroker-*.log):
  kcat -b 127.0.0.1:9092 -L                                   # brokers, leaders, ISR
  seq 1 100 | kcat -b 127.0.0.1:9092 -P -t demo -p 0 -X acks=all
  kcat -b 127.0.0.1:9092 -C -t demo -p 0 -o beginning -e
MSG
fi
wait
