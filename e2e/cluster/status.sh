#!/usr/bin/env bash
# Exits 0 when every process of the local cluster is running, listing each with its PID.
set -uo pipefail
. "$(dirname "$0")/env.sh"
ok=0
for name in etcd kube-apiserver kube-controller-manager kube-scheduler kwok prometheus host-forward pod-agent; do
  pid=$(cat "$PID_DIR/$name.pid" 2>/dev/null || true)
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
    printf '%-24s running (pid %s)\n' "$name" "$pid"
  else
    printf '%-24s not running\n' "$name"
    ok=1
  fi
done
exit $ok
