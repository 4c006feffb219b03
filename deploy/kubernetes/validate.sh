#!/usr/bin/env bash
# Schema and consistency check of deploy/kubernetes/*.yaml (run by .ci/run).
#
# Installs the validator from PyPI into a virtualenv kept between runs:
# kubernetes-validate bundles the Kubernetes JSON schemas (1.25 .. 1.37), so
# it needs no network once installed (kubeconform and kubeval are not on
# PyPI or in Debian; kubectl's own validation needs an API server).
#
#   BATON_DEPLOY_VENV   virtualenv folder (default ~/.cache/baton/deploy-venv)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
VENV=${BATON_DEPLOY_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/baton/deploy-venv}
PIN="kubernetes-validate==1.37.0"

if ! "$VENV/bin/python" -c 'import kubernetes_validate, yaml' >/dev/null 2>&1 ||
   [[ "$(cat "$VENV/.pin" 2>/dev/null)" != "$PIN" ]]; then
  echo "[k8s-validate] installing $PIN into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "$PIN" ||
    { echo "[k8s-validate] ERROR: could not install $PIN from PyPI" >&2; exit 1; }
  echo "$PIN" >"$VENV/.pin"
fi
exec "$VENV/bin/python" "$HERE/check_manifests.py"
