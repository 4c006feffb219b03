#!/usr/bin/env bash
# Fault test of deploy/compose/docker-compose.yml on a real Docker engine.
#
#   deploy/compose/test.sh            # builds the images, runs every scenario
#   BATON_SKIP_BUILD=1 deploy/compose/test.sh   # reuse baton-*:dev images
#
# 1. builds baton-controller:dev and baton-agent:dev (deploy/docker/build-images.sh)
# 2. brings up 3 controllers + 3 broker agents, waits for a raft leader and
#    3 ALIVE brokers, creates topic `orders` (6 partitions, RF 3)
# 3. docker kill: the broker leading partition 0. Its partitions must move to
#    other brokers with higher leader epochs (fast failover: its session
#    stream closed). It is then started again and must re-register.
# 4. docker pause: the broker now leading partition 0. It must be FENCED
#    after the session timeout (3 s; a frozen process closes nothing) and its
#    partitions must move. Unpaused, it re-registers with a new epoch.
# 5. docker network disconnect: the raft leader controller. The other two
#    must elect another leader (higher term) and accept writes (a topic
#    created through them). Reconnected, the old leader must catch up.
# 6. final: one leader agreed by all 3 controllers, 3 ALIVE brokers, every
#    partition of both topics led by an ALIVE broker.
#
# batonctl runs INSIDE a controller container (the controller image carries
# it): leader hints name compose service names, which resolve only on the
# compose network, and nothing is published on the host. While a controller
# is cut off, batonctl runs in, and is pointed at, the other two.
#
# Every wait is a bounded poll on a condition (wait_for), never a fixed sleep.
# The stack is removed (docker-compose down -v) on exit, pass or fail; on
# failure the containers' state and last log lines are printed first.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
export BATON_TAG=${BATON_TAG:-dev}
PROJECT=${BATON_COMPOSE_PROJECT:-batontest}
NET="${PROJECT}_baton"
DC=(docker-compose -f "$HERE/docker-compose.yml" -p "$PROJECT")
CHECKS="$HERE/checks.py"
ALL_CTRL="controller-1:7101,controller-2:7101,controller-3:7101"
TOPIC=orders
PARTITIONS=6
T_START=$EPOCHREALTIME
PASSED=0
PAUSED_CID=""
DISCONNECTED=""

# ------------------------------------------------------------------ helpers
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
since() { local t0=${1/./} t1=${EPOCHREALTIME/./}; printf '%d.%03ds' $(((t1 - t0) / 1000000)) $((((t1 - t0) / 1000) % 1000)); }
log() { printf '[compose-test %7s] %s\n' "$(since "$T_START")" "$*"; }
fail() {
  printf '[compose-test %7s] FAIL: %s\n' "$(since "$T_START")" "$*" >&2
  exit 1
}
pass() { PASSED=$((PASSED + 1)); log "PASS: $*"; }

cid() { "${DC[@]}" ps -q "$1"; }

# The controller batonctl runs in; changed while that one is cut off.
EXEC_IN=controller-1
EXEC_CTRL=$ALL_CTRL
bctl() {
  timeout 20 docker exec "$(cid "$EXEC_IN")" /usr/local/bin/batonctl \
    --controllers "$EXEC_CTRL" --timeout-ms 2000 --output json "$@"
}
# check SUBCOMMAND-OF-checks.py... < json
check() { python3 "$CHECKS" "$@"; }

# wait_for DESCRIPTION TIMEOUT_S FUNCTION [ARGS...]: polls FUNCTION (run in
# this shell, so it may set variables) every 200 ms until it succeeds;
# fails the test when TIMEOUT_S passes first. WAITED holds the time taken.
WAITED=""
WHY_FILE=$(mktemp "${TMPDIR:-/tmp}/baton-compose-test.XXXXXX")
wait_for() {
  local desc=$1 timeout_s=$2; shift 2
  local t0=$EPOCHREALTIME deadline=$(($(now_ms) + timeout_s * 1000)) why=""
  while :; do
    if "$@" >"$WHY_FILE" 2>&1; then
      WAITED=$(since "$t0")
      log "ok: $desc (after $WAITED)"
      return 0
    fi
    if (($(now_ms) >= deadline)); then
      why=$(tail -c 600 "$WHY_FILE")
      fail "timed out after ${timeout_s}s waiting for: $desc; last answer: ${why:-<none>}"
    fi
    sleep 0.2
  done
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  rm -f "$WHY_FILE"
  if ((rc != 0)); then
    log "FAILED (exit $rc); state of the stack:"
    "${DC[@]}" ps || true
    local s
    for s in controller-1 controller-2 controller-3 broker-1 broker-2 broker-3; do
      echo "----- last log lines of $s -----"
      "${DC[@]}" logs --no-color --tail 25 "$s" 2>&1 | tail -25 || true
    done
  fi
  [[ -n "$PAUSED_CID" ]] && docker unpause "$PAUSED_CID" >/dev/null 2>&1 || true
  if [[ -n "$DISCONNECTED" ]]; then
    docker network connect --alias "$DISCONNECTED" "$NET" "$(cid "$DISCONNECTED")" >/dev/null 2>&1 || true
  fi
  log "cleaning up: docker-compose down -v"
  "${DC[@]}" down -v --remove-orphans -t 3 >/dev/null 2>&1 || true
  if ((rc == 0)); then
    log "compose fault test passed in $(since "$T_START")"
    echo "compose: $PASSED passed, 0 failed"
  else
    echo "compose: $PASSED passed, 1 failed" >&2
  fi
  exit "$rc"
}

# ------------------------------------------------------------------ checks
# Each prints why it is not yet true and returns non-zero.
quorum_json() { # quorum_json SERVICE: that controller's own view of raft
  timeout 20 docker exec "$(cid "$1")" /usr/local/bin/batonctl \
    --controllers 127.0.0.1:7101 --timeout-ms 2000 --output json quorum status
}
has_leader() { # has_leader [NOT_ID [ABOVE_TERM]]: sets LEADER, TERM
  local q
  q=$(bctl quorum status) || return 1
  LEADER=$(check q leader <<<"$q")
  TERM=$(check q term <<<"$q")
  ((LEADER != 0)) || { echo "no raft leader"; return 1; }
  if [[ -n "${1:-}" ]] && ((LEADER == $1)); then echo "leader is still $1"; return 1; fi
  if [[ -n "${2:-}" ]] && ((TERM <= $2)); then echo "term $TERM not above $2"; return 1; fi
}
alive_is() { # alive_is IDS: exactly these brokers are ALIVE
  local l a
  l=$(bctl broker list) || return 1
  a=$(check alive <<<"$l")
  [[ "$a" == "$1" ]] || { echo "ALIVE brokers: '$a', want '$1'"; return 1; }
}
broker_state_is() { # broker_state_is ID STATE
  local l s
  l=$(bctl broker list) || return 1
  s=$(check state "$1" <<<"$l") || return 1
  [[ "$s" == "$2" ]] || { echo "broker $1 is $s, want $2"; return 1; }
}
broker_reregistered() { # broker_reregistered ID OLD_EPOCH: ALIVE with a newer epoch
  local l s e
  l=$(bctl broker list) || return 1
  s=$(check state "$1" <<<"$l") || return 1
  e=$(check epoch "$1" <<<"$l") || return 1
  [[ "$s" == ALIVE ]] && ((e > $2)) || { echo "broker $1 is $s epoch $e (was $2)"; return 1; }
}
topic_led() { # topic_led TOPIC [LEADER_IDS]: every partition has a leader (among IDS)
  local t
  t=$(bctl topic describe "$1") || return 1
  check all-led <<<"$t" || return 1
  [[ -z "${2:-}" ]] || check leaders-in "$2" <<<"$t"
}
moved_off() { # moved_off BROKER SPEC: partitions in SPEC left BROKER, epochs up
  local t
  t=$(bctl topic describe "$TOPIC") || return 1
  check moved-off "$1" "$2" <<<"$t"
}
create_topic() { # create_topic NAME PARTITIONS RF (a retry after an unanswered create finds it made)
  bctl topic create "$1" --partitions "$2" --replication-factor "$3" || bctl topic describe "$1" >/dev/null
}
caught_up() { # caught_up SERVICE MIN_APPLIED LEADER: that controller follows LEADER and applied MIN
  local q l a
  q=$(quorum_json "$1") || return 1
  l=$(check q leader <<<"$q"); a=$(check q applied_index <<<"$q")
  ((l == $3 && a >= $2)) || { echo "$1 sees leader $l, applied $a (want $3, >= $2)"; return 1; }
}
all_agree() { # all_agree: the 3 controllers name the same non-zero leader; sets LEADER
  local s l first=""
  for s in controller-1 controller-2 controller-3; do
    l=$(quorum_json "$s" | check q leader) || return 1
    ((l != 0)) || { echo "$s knows no leader"; return 1; }
    [[ -z "$first" || "$first" == "$l" ]] || { echo "leaders disagree: $first vs $l"; return 1; }
    first=$l
  done
  LEADER=$first
}
describe() { bctl topic describe "$TOPIC"; }
show_leaders() { # show_leaders SPEC: the partitions of SPEC ("p:old_epoch ...") now
  bctl topic describe "$TOPIC" | python3 -c '
import json, sys
now = {p["partition"]: p for p in json.load(sys.stdin)["partitions"]}
for item in sys.argv[1].split():
    part, old = item.split(":")
    p = now[int(part)]
    print("    partition %s: leader %d, epoch %s -> %d, isr %s" % (part, p["leader"], old, p["leader_epoch"], p["isr"]))' "$1"
}

# ------------------------------------------------------------------ run
command -v docker-compose >/dev/null || fail "docker-compose is not installed"
docker info >/dev/null 2>&1 || fail "the Docker engine is not reachable"
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ "${BATON_SKIP_BUILD:-0}" != 1 ]]; then
  log "building images (deploy/docker/build-images.sh)"
  "$ROOT/deploy/docker/build-images.sh"
fi
for img in baton-controller baton-agent; do
  docker image inspect "$img:$BATON_TAG" >/dev/null 2>&1 || fail "image $img:$BATON_TAG is missing"
done

log "removing any leftover stack of project $PROJECT"
"${DC[@]}" down -v --remove-orphans -t 1 >/dev/null 2>&1 || true

log "docker-compose up (3 controllers, then 3 agents once the controllers are healthy)"
"${DC[@]}" up -d --quiet-pull 2>&1 | sed 's/^/    /' || fail "docker-compose up failed (see above)"

# --- 1. the cluster forms
wait_for "a raft leader" 60 has_leader
log "raft leader: controller $LEADER (term $TERM)"
wait_for "3 ALIVE brokers" 60 alive_is 1,2,3
pass "cluster formed: leader controller-$LEADER, brokers 1,2,3 ALIVE"

wait_for "topic $TOPIC created" 30 create_topic "$TOPIC" "$PARTITIONS" 3
wait_for "every partition of $TOPIC has a leader" 30 topic_led "$TOPIC"
log "topic $TOPIC:"; bctl topic describe "$TOPIC" | python3 -c '
import json,sys
for p in json.load(sys.stdin)["partitions"]:
    print("    partition %d leader %d epoch %d isr %s" % (p["partition"], p["leader"], p["leader_epoch"], p["isr"]))'

# --- 2. docker kill the broker leading partition 0
KILLED=$(describe | check leader 0) || fail "batonctl: cannot read the leader of $TOPIC/0"
KILLED_SPEC=$(describe | check led-by "$KILLED") || fail "batonctl: cannot describe $TOPIC"
KILLED_EPOCH=$(bctl broker list | check epoch "$KILLED") || fail "batonctl: cannot list brokers"
log "docker kill broker-$KILLED (leads partition:epoch $KILLED_SPEC)"
T_KILL=$EPOCHREALTIME
docker kill "$(cid "broker-$KILLED")" >/dev/null || fail "docker kill broker-$KILLED failed"
wait_for "broker $KILLED FENCED" 15 broker_state_is "$KILLED" FENCED
wait_for "broker $KILLED's partitions moved with higher epochs" 15 moved_off "$KILLED" "$KILLED_SPEC"
show_leaders "$KILLED_SPEC"
pass "killed broker $KILLED: FENCED, partitions moved with higher epochs (seen $(since "$T_KILL") after the kill; each poll costs ~0.5 s of docker exec)"
log "docker start broker-$KILLED"
docker start "$(cid "broker-$KILLED")" >/dev/null || fail "docker start broker-$KILLED failed"
wait_for "broker $KILLED re-registered (ALIVE, epoch above $KILLED_EPOCH)" 30 broker_reregistered "$KILLED" "$KILLED_EPOCH"
pass "restarted broker $KILLED re-registered"

# --- 3. docker pause the broker now leading partition 0
PAUSED=$(describe | check leader 0) || fail "batonctl: cannot read the leader of $TOPIC/0"
((PAUSED != KILLED)) || fail "partition 0 is led by the broker that was killed"
PAUSED_SPEC=$(describe | check led-by "$PAUSED") || fail "batonctl: cannot describe $TOPIC"
PAUSED_EPOCH=$(bctl broker list | check epoch "$PAUSED") || fail "batonctl: cannot list brokers"
log "docker pause broker-$PAUSED (leads partition:epoch $PAUSED_SPEC)"
PAUSED_CID=$(cid "broker-$PAUSED")
T_PAUSE=$EPOCHREALTIME
docker pause "$PAUSED_CID" >/dev/null || fail "docker pause broker-$PAUSED failed"
wait_for "broker $PAUSED FENCED by session timeout" 20 broker_state_is "$PAUSED" FENCED
FENCE_AFTER=$(since "$T_PAUSE")
wait_for "broker $PAUSED's partitions moved with higher epochs" 15 moved_off "$PAUSED" "$PAUSED_SPEC"
show_leaders "$PAUSED_SPEC"
pass "paused broker $PAUSED: FENCED $FENCE_AFTER after the pause (session timeout 3 s), partitions moved"
log "docker unpause broker-$PAUSED"
docker unpause "$PAUSED_CID" >/dev/null || fail "docker unpause broker-$PAUSED failed"
PAUSED_CID=""
wait_for "broker $PAUSED re-registered (ALIVE, epoch above $PAUSED_EPOCH)" 30 broker_reregistered "$PAUSED" "$PAUSED_EPOCH"
pass "unpaused broker $PAUSED re-registered"

# --- 4. cut the raft leader controller off the network
wait_for "a raft leader" 30 has_leader
OLD_LEADER=$LEADER OLD_TERM=$TERM
CUT="controller-$OLD_LEADER"
OTHERS=()
for i in 1 2 3; do ((i == OLD_LEADER)) || OTHERS+=("controller-$i"); done
log "docker network disconnect $CUT (raft leader, term $OLD_TERM)"
EXEC_IN=${OTHERS[0]}
EXEC_CTRL="${OTHERS[0]}:7101,${OTHERS[1]}:7101"
docker network disconnect "$NET" "$(cid "$CUT")" || fail "docker network disconnect $CUT failed"
DISCONNECTED=$CUT
wait_for "a new raft leader among ${OTHERS[*]}" 30 has_leader "$OLD_LEADER" "$OLD_TERM"
log "new raft leader: controller $LEADER (term $TERM)"
wait_for "a write (topic after-cut created) through the remaining quorum" 30 create_topic after-cut 3 3
wait_for "every partition of after-cut has a leader" 30 topic_led after-cut
MIN_APPLIED=$(quorum_json "$EXEC_IN" | check q applied_index) || fail "batonctl: no quorum status from $EXEC_IN"
wait_for "3 ALIVE brokers (sessions moved to the new leader)" 30 alive_is 1,2,3
pass "controller $OLD_LEADER cut off: controller $LEADER elected (term $TERM), writes accepted"
log "docker network connect $CUT"
docker network connect --alias "$CUT" "$NET" "$(cid "$CUT")" || fail "docker network connect $CUT failed"
DISCONNECTED=""
EXEC_IN=controller-1
EXEC_CTRL=$ALL_CTRL

# --- 5. everything recovered
wait_for "all 3 controllers agree on one leader" 60 all_agree
wait_for "$CUT caught up (applied >= $MIN_APPLIED)" 60 caught_up "$CUT" "$MIN_APPLIED" "$LEADER"
wait_for "3 ALIVE brokers" 30 alive_is 1,2,3
wait_for "every partition of $TOPIC led by an ALIVE broker" 30 topic_led "$TOPIC" 1,2,3
wait_for "every partition of after-cut led by an ALIVE broker" 30 topic_led after-cut 1,2,3
pass "recovered: controllers agree on leader $LEADER, brokers 1,2,3 ALIVE, all partitions led"
log "final state:"
bctl broker list | python3 -c '
import json,sys
for b in json.load(sys.stdin):
    print("    broker %d %s epoch %d %s" % (b["id"], b["state"], b["epoch"], b["endpoint"]))'
