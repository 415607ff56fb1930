#!/usr/bin/env bash
# Runs every test: formatting and lints, unit and integration tests, then the end-to-end
# suite against a freshly started local cluster, which is torn down afterwards (also on
# failure). Prints how long each part took.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
. "$here/cluster/env.sh"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$SWITCHYARD_CACHE/target}
cd "$repo"

timings=()
phase() {
  local name=$1 start
  shift
  start=$(date +%s)
  echo "=== $name"
  "$@"
  timings+=("$(printf '%-22s %4ss' "$name" $(($(date +%s) - start)))")
}

phase "install dependencies" bash "$here/install-deps.sh"
phase "cargo fmt" cargo fmt --check
phase "cargo clippy" cargo clippy --all-targets --quiet -- -D warnings
phase "cargo build" cargo build --quiet
phase "cargo test" cargo test --quiet

if [[ -e $E2E_DIR/cluster.env ]]; then
  echo "a local cluster from an earlier run is in $E2E_DIR; stopping it for a clean run"
  bash "$here/cluster/down.sh"
fi
trap 'bash "$here/cluster/down.sh" >/dev/null 2>&1 || true' EXIT
phase "cluster up" bash "$here/cluster/up.sh"
# Keep the cluster's logs with the failure when the suite fails. Failed end-to-end tests get
# one more run on the same cluster (timing-sensitive scenarios on a loaded 2-core machine);
# a test that passes only on that rerun is reported as flaky, never hidden. A selection with
# no test in it (exit code 5, e.g. a -k filter matching no chaos scenario) is not a failure.
run_e2e() {
  # --durations: the slowest scenarios, where the time budget goes.
  local pytest=("$SWITCHYARD_CACHE/venv/bin/pytest" -q -o "cache_dir=$E2E_DIR/pytest-cache" --durations=15)
  local status=0
  "${pytest[@]}" "$here/mock" "$here/tests" "$@" || status=$?
  if ((status == 0 || status == 5)); then
    return 0
  fi
  echo "--- rerunning the failed tests once ---"
  # `status=$?` after an `if` without a taken branch would read the if's own status, 0.
  status=0
  "${pytest[@]}" --last-failed "$here/mock" "$here/tests" "$@" || status=$?
  if ((status == 0)); then
    echo "WARNING: the tests above failed once and passed on a rerun: they are flaky"
    return 0
  fi
  echo "--- last lines of each component's log ---"
  for f in "$LOG_DIR"/*.log; do echo "## $f"; tail -n 15 "$f"; done
  return $status
}
# Independent scenarios (a namespace each) run in parallel, E2E_WORKERS at a time (pytest-xdist;
# most of a scenario's time is waiting on steps, scrapes and leases, not CPU).
phase "e2e (pytest)" run_e2e -m "not chaos and not serial" -n "${E2E_WORKERS:-2}" "$@"
# Scenarios that restart the API server or etcd, or kill the controller's leader, disturb
# every test beside them, and a few measure what any test beside them would add to: they
# run alone, one at a time, after the main suite, on the same cluster.
phase "e2e serial (chaos)" run_e2e -m "chaos or serial" "$@"
phase "cluster down" bash "$here/cluster/down.sh"
trap - EXIT

# Teardown must leave nothing behind: no process started from the cluster's state dir.
if pgrep -f "$E2E_DIR" >/dev/null; then
  echo "processes left running after teardown:"
  pgrep -af "$E2E_DIR"
  exit 1
fi

echo "=== timings"
printf '%s\n' "${timings[@]}"
