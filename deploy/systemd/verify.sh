#!/usr/bin/env bash
# Checks deploy/systemd/*.service (run by .ci/run): `systemd-analyze verify`
# must print nothing (unknown keys, bad values, missing binaries are all
# reported), and `systemd-analyze security --offline` must rate each unit's
# exposure at most 2.5 (of 10). The units name /usr/local/bin/...; the check
# points ExecStart at target/release so the binaries exist, and skips (saying
# so) when systemd-analyze is missing or the binaries are not built.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# Release binaries if built, else the debug ones scripts/test.sh builds.
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
[[ -x "$BIN/baton-controller" ]] || BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug
if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "[systemd-verify] SKIPPED: systemd-analyze is not installed"
  exit 0
fi
TMP=$(mktemp -d "${TMPDIR:-/tmp}/baton-units.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
passed=0 failed=0
for unit in "$HERE"/*.service; do
  name=$(basename "$unit" .service)
  if [[ ! -x "$BIN/$name" ]]; then
    echo "[systemd-verify] SKIPPED $name: $BIN/$name is not built"
    continue
  fi
  sed "s|/usr/local/bin/$name|$BIN/$name|" "$unit" >"$TMP/$name.service"
  out=$(SYSTEMD_LOG_LEVEL=notice systemd-analyze verify "$TMP/$name.service" 2>&1) || true
  if [[ -n "$out" ]]; then
    echo "FAIL systemd-analyze verify $name.service:"; echo "$out" | sed 's/^/    /'
    failed=$((failed + 1))
  else
    echo "ok   systemd-analyze verify $name.service"; passed=$((passed + 1))
  fi
  if out=$(systemd-analyze security --offline=yes --threshold=25 "$TMP/$name.service" 2>&1); then
    echo "ok   systemd-analyze security $name.service: $(echo "$out" | grep -o 'exposure level.*' | tail -1)"
    passed=$((passed + 1))
  else
    echo "FAIL systemd-analyze security $name.service:"; echo "$out" | tail -5 | sed 's/^/    /'
    failed=$((failed + 1))
  fi
done
echo "systemd units: $passed passed, $failed failed"
((failed == 0))
