#!/usr/bin/env bash
# Stops exactly the processes the cluster scripts started (by their PID files), waits for
# them to exit and for their ports to close, then removes the cluster's state.
set -uo pipefail
. "$(dirname "$0")/env.sh"

# stop NAME...: SIGTERM to each named PID file's process at once, then wait for all of them
# (SIGKILL after 10s). Dependents go in an earlier call than what they depend on.
stop() {
  local pids=() names=() name f
  for name in "$@"; do
    f=$PID_DIR/$name.pid
    [[ -e $f ]] || continue
    pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null
      pids+=("$pid")
      names+=("$name")
    fi
    rm -f "$f"
  done
  local i
  for i in "${!pids[@]}"; do
    for _ in $(seq 1 100); do
      kill -0 "${pids[$i]}" 2>/dev/null || continue 2
      sleep 0.1
    done
    log "${names[$i]} (pid ${pids[$i]}) ignored SIGTERM for 10s; killing"
    kill -KILL "${pids[$i]}" 2>/dev/null
  done
}

core=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok prometheus)
if [[ -d $PID_DIR ]]; then
  # Anything tests or the demo started (controller, gateway, mock servers) registers a PID
  # file here too; those go first, then the control plane from the top down.
  extra=()
  for f in "$PID_DIR"/*.pid; do
    [[ -e $f ]] || continue
    name=$(basename "$f" .pid)
    [[ " ${core[*]} " == *" $name "* ]] || extra+=("$name")
  done
  ((${#extra[@]})) && stop "${extra[@]}"
  stop prometheus kwok kube-scheduler kube-controller-manager
  stop kube-apiserver
  stop etcd
fi

[[ -x $CLUSTER_DIR/netns.sh ]] && bash "$CLUSTER_DIR/netns.sh" down || true

busy=()
for port in $ETCD_PORT $ETCD_PEER_PORT $APISERVER_PORT $KCM_PORT $SCHEDULER_PORT $KWOK_PORT $PROMETHEUS_PORT; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then busy+=("$port"); fi
done
if ((${#busy[@]})); then
  log "ports still in use after teardown: ${busy[*]}"
  exit 1
fi
rm -rf "$E2E_DIR"
log "down"
