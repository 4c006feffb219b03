#!/usr/bin/env bash
# Runs the whole test suite: unit tests, in-process tests and the
# multi-process cluster tests (which need the binaries built first).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --workspace --bins --locked
cargo test --workspace --locked "$@"
