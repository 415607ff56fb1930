#!/usr/bin/env bash
# `make bench`: the gateway beside direct, nginx and LiteLLM (proxy.py), the controller and
# the gateway at 10,000 routes (scale.py), and the time to roll back (rollback.py), on a
# fresh local cluster that is torn down afterwards. Release builds, as deployed.
# Reports go to e2e/bench/results/*.md; RESULTS.md keeps the recorded runs.
#
#   make bench                     # everything
#   BENCH="proxy" make bench       # one part (proxy, scale, rollback)
#   BENCH_ARGS="--duration 5" ...  # passed to each script
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../cluster/env.sh"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$SWITCHYARD_CACHE/target}
bash "$here/../install-deps.sh"
eval "$(bash "$here/install-deps.sh" | sed 's/^/export /')"
cargo build --release --quiet
export SWITCHYARD_BINARY=$CARGO_TARGET_DIR/release/switchyard
py=$SWITCHYARD_CACHE/venv/bin/python
mkdir -p "$here/results"

if [[ -e $E2E_DIR/cluster.env ]]; then bash "$here/../cluster/down.sh"; fi
trap 'bash "$here/../cluster/down.sh" >/dev/null 2>&1 || true' EXIT
bash "$here/../cluster/up.sh"

parts=${BENCH:-$(for p in proxy scale rollback; do [[ -f $here/$p.py ]] && printf "%s " "$p"; done)}
for part in ${parts//,/ }; do
  [[ -f $here/$part.py ]] || { log "no benchmark $part"; exit 2; }
  echo "=== bench: $part"
  # shellcheck disable=SC2086
  "$py" "$here/$part.py" --out "$here/results/$part.md" ${BENCH_ARGS:-}
done
