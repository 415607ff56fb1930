#!/usr/bin/env bash
# Runs the benchmarks on a fresh local cluster and tears it down afterwards.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../cluster/env.sh"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$SWITCHYARD_CACHE/target}
bash "$here/../install-deps.sh"
# Benchmarks measure the release build, as deployed.
cargo build --release --quiet
mkdir -p "$CARGO_TARGET_DIR/debug"
export SWITCHYARD_BINARY=$CARGO_TARGET_DIR/release/switchyard
trap 'bash "$here/../cluster/down.sh" >/dev/null 2>&1 || true' EXIT
bash "$here/../cluster/up.sh"
"$SWITCHYARD_CACHE/venv/bin/python" "$here/gateway_overhead.py" "$@"
