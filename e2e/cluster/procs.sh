# Starting and health-checking the local cluster's processes. Sourced by up.sh (which starts
# them) and restart.sh (which restarts one with the exact command line up.sh used).

# start NAME CMD...: runs CMD in the background, appending to logs/NAME.log; the PID file is
# what `down` uses, so teardown stops exactly what was started here. The command line is kept
# beside it (NUL-separated) so restart.sh can start the same process again.
start() {
  local name=$1
  shift
  printf '%s\0' "$@" >"$PID_DIR/$name.cmd"
  nohup "$@" >>"$LOG_DIR/$name.log" 2>&1 </dev/null &
  echo $! >"$PID_DIR/$name.pid"
}

https_ok() { curl -fsS --cacert "$PKI_DIR/ca.crt" --cert "$PKI_DIR/admin.crt" --key "$PKI_DIR/admin.key" "$1"; }
insecure_ok() { curl -fsSk "$1"; }

# healthy NAME: whether the named component answers its health endpoint.
healthy() {
  case $1 in
    etcd) curl -fsS "http://127.0.0.1:$ETCD_PORT/health" ;;
    kube-apiserver) https_ok "https://127.0.0.1:$APISERVER_PORT/readyz" ;;
    kube-controller-manager) insecure_ok "https://127.0.0.1:$KCM_PORT/healthz" ;;
    kube-scheduler) insecure_ok "https://127.0.0.1:$SCHEDULER_PORT/healthz" ;;
    kwok) curl -fsS "http://127.0.0.1:$KWOK_PORT/healthz" ;;
    prometheus) curl -fsS "http://127.0.0.1:$PROMETHEUS_PORT/-/ready" ;;
    *) kill -0 "$(cat "$PID_DIR/$1.pid")" ;;
  esac
}

# wait_for NAME SECONDS CMD...: polls CMD until it succeeds; on timeout shows NAME's log.
wait_for() {
  local name=$1 timeout=$2
  shift 2
  local deadline=$(($(date +%s) + timeout))
  until "$@" >/dev/null 2>&1; do
    if ! kill -0 "$(cat "$PID_DIR/$name.pid")" 2>/dev/null; then
      log "$name exited; last lines of $LOG_DIR/$name.log:"
      tail -n 30 "$LOG_DIR/$name.log" >&2
      exit 1
    fi
    if (($(date +%s) > deadline)); then
      log "$name not healthy after ${timeout}s; last lines of $LOG_DIR/$name.log:"
      tail -n 30 "$LOG_DIR/$name.log" >&2
      exit 1
    fi
    sleep 0.2
  done
}
