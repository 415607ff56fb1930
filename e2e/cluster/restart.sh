#!/usr/bin/env bash
# Restarts one process of the local cluster the way an operator or a crash would: signal it,
# wait for it to exit, optionally leave it down a while, then start it again with exactly the
# command line up.sh used (kept beside its PID file) and wait until it is healthy.
#
#   restart.sh [--signal TERM|KILL] [--down SECONDS] NAME
#
# NAME is a PID file's name in .e2e/pids (etcd, kube-apiserver, prometheus, ...). Prints one
# line of timings: how long the old process took to exit, and how long the component was
# unavailable until healthy again.
set -euo pipefail
. "$(dirname "$0")/env.sh"
. "$CLUSTER_DIR/procs.sh"

sig=TERM down=0
while (($#)); do
  case $1 in
    --signal) sig=$2; shift 2 ;;
    --down) down=$2; shift 2 ;;
    -*) log "unknown option $1"; exit 2 ;;
    *) break ;;
  esac
done
name=${1:?usage: restart.sh [--signal TERM|KILL] [--down SECONDS] NAME}
[[ -f $PID_DIR/$name.cmd ]] || { log "no command line recorded for $name in $PID_DIR"; exit 1; }
mapfile -d '' cmd <"$PID_DIR/$name.cmd"

now() { date +%s.%N; }
since() { awk "BEGIN{printf \"%.1f\", $(now) - $1}"; }

t0=$(now)
pid=$(cat "$PID_DIR/$name.pid" 2>/dev/null || true)
if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
  kill -"$sig" "$pid"
  for _ in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name (pid $pid) ignored SIG$sig for 30s; killing"
    kill -KILL "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  fi
fi
stopped=$(since "$t0")
sleep "$down"
start "$name" "${cmd[@]}"
wait_for "$name" 90 healthy "$name"
log "restarted $name (SIG$sig): exited in ${stopped}s, healthy again $(since "$t0")s after the signal"
