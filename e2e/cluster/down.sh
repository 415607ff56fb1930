#!/usr/bin/env bash
# Stops exactly the processes the cluster scripts started (by their PID files), waits for
# them to exit and for their ports to close, then removes the cluster's state.
set -uo pipefail
. "$(dirname "$0")/env.sh"

stop_pid() {
  local name=$1 pid=$2
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  log "$name (pid $pid) ignored SIGTERM for 10s; killing"
  kill -KILL "$pid" 2>/dev/null
  sleep 0.2
}

if [[ -d $PID_DIR ]]; then
  # Anything tests started (gateway, controller, mock servers) registers a PID file here too;
  # stop those first, then the control plane from the top down.
  for f in "$PID_DIR"/*.pid; do
    [[ -e $f ]] || continue
    name=$(basename "$f" .pid)
    case $name in etcd | kube-apiserver | kube-controller-manager | kube-scheduler | kwok | prometheus) continue ;; esac
    stop_pid "$name" "$(cat "$f")"
    rm -f "$f"
  done
  for name in prometheus kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do
    f=$PID_DIR/$name.pid
    [[ -e $f ]] || continue
    stop_pid "$name" "$(cat "$f")"
    rm -f "$f"
  done
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
