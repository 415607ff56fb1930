#!/usr/bin/env bash
# Brings up a real Kubernetes control plane on 127.0.0.1: etcd, kube-apiserver (TLS, RBAC),
# kube-controller-manager, kube-scheduler, kwok simulating NVIDIA GPU node pools, and
# Prometheus. Writes $E2E_DIR/kubeconfig. Idempotent: an already running cluster is kept.
set -euo pipefail
. "$(dirname "$0")/env.sh"

start_time=$(date +%s.%N)
bash "$CLUSTER_DIR/build.sh"

if [[ -f $E2E_DIR/cluster.env ]] && bash "$CLUSTER_DIR/status.sh" >/dev/null 2>&1; then
  log "already running; KUBECONFIG=$KUBECONFIG_FILE"
  exit 0
fi
bash "$CLUSTER_DIR/down.sh" >/dev/null 2>&1 || true

mkdir -p "$PKI_DIR" "$PID_DIR" "$LOG_DIR" "$E2E_DIR/etcd" "$E2E_DIR/prometheus/targets"

for port in $ETCD_PORT $ETCD_PEER_PORT $APISERVER_PORT $KCM_PORT $SCHEDULER_PORT $KWOK_PORT $PROMETHEUS_PORT; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    log "port $port on 127.0.0.1 is already in use; stop what holds it or set the *_PORT variables in e2e/cluster/env.sh"
    exit 1
  fi
done

bash "$CLUSTER_DIR/pki.sh"

. "$CLUSTER_DIR/procs.sh"

start etcd "$ETCD_BIN_DIR/etcd" \
  --name switchyard-e2e \
  --data-dir "$E2E_DIR/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "switchyard-e2e=http://127.0.0.1:$ETCD_PEER_PORT" \
  --listen-metrics-urls "" \
  --unsafe-no-fsync \
  --quota-backend-bytes 4294967296 \
  --log-level warn
wait_for etcd 30 healthy etcd

start kube-apiserver "$K8S_BIN_DIR/kube-apiserver" \
  --bind-address 127.0.0.1 \
  --advertise-address 127.0.0.1 \
  --secure-port "$APISERVER_PORT" \
  --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
  --tls-cert-file "$PKI_DIR/apiserver.crt" \
  --tls-private-key-file "$PKI_DIR/apiserver.key" \
  --client-ca-file "$PKI_DIR/ca.crt" \
  --authorization-mode RBAC \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "$PKI_DIR/sa.pub" \
  --service-account-signing-key-file "$PKI_DIR/sa.key" \
  --service-cluster-ip-range "$SERVICE_CIDR" \
  --allow-privileged=true \
  --endpoint-reconciler-type none \
  --profiling=false \
  --v 1
wait_for kube-apiserver 90 healthy kube-apiserver

# kwok renews node leases from the same two cores the tests load; a generous grace period
# keeps a late heartbeat from marking nodes NotReady (and their pods unready) mid-test.
start kube-controller-manager "$K8S_BIN_DIR/kube-controller-manager" \
  --kubeconfig "$PKI_DIR/controller-manager.kubeconfig" \
  --authentication-kubeconfig "$PKI_DIR/controller-manager.kubeconfig" \
  --authorization-kubeconfig "$PKI_DIR/controller-manager.kubeconfig" \
  --bind-address 127.0.0.1 \
  --secure-port "$KCM_PORT" \
  --root-ca-file "$PKI_DIR/ca.crt" \
  --service-account-private-key-file "$PKI_DIR/sa.key" \
  --cluster-signing-cert-file "$PKI_DIR/ca.crt" \
  --cluster-signing-key-file "$PKI_DIR/ca.key" \
  --use-service-account-credentials=true \
  --kube-api-qps 100 \
  --node-monitor-grace-period 10m \
  --kube-api-burst 200 \
  --controllers '*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-node-route-controller' \
  --leader-elect=false \
  --profiling=false \
  --v 1

start kube-scheduler "$K8S_BIN_DIR/kube-scheduler" \
  --kubeconfig "$PKI_DIR/scheduler.kubeconfig" \
  --authentication-kubeconfig "$PKI_DIR/scheduler.kubeconfig" \
  --authorization-kubeconfig "$PKI_DIR/scheduler.kubeconfig" \
  --bind-address 127.0.0.1 \
  --secure-port "$SCHEDULER_PORT" \
  --leader-elect=false \
  --profiling=false \
  --v 1

start kwok "$KWOK_BIN_DIR/kwok" \
  --kubeconfig "$PKI_DIR/kwok.kubeconfig" \
  --config "$CLUSTER_DIR/kwok.yaml" \
  --manage-all-nodes=true \
  --server-address "127.0.0.1:$KWOK_PORT" \
  --cidr "$POD_CIDR" \
  --node-ip 127.0.0.1

wait_for kube-controller-manager 60 healthy kube-controller-manager
wait_for kube-scheduler 60 healthy kube-scheduler
wait_for kwok 60 healthy kwok

export KUBECONFIG=$KUBECONFIG_FILE
bash "$CLUSTER_DIR/nodes.sh" | kubectl apply -f - >/dev/null
kubectl wait --for=condition=Ready node --all --timeout=60s >/dev/null

bash "$CLUSTER_DIR/netns.sh" up
start host-forward python3 "$CLUSTER_DIR/host_forward.py" "$POD_HOST_ADDR" "$APISERVER_PORT" "$PROMETHEUS_PORT"
wait_for host-forward 10 bash -c "exec 3<>/dev/tcp/$POD_HOST_ADDR/$APISERVER_PORT"
export LOG_DIR E2E_DIR PKI_DIR APISERVER_PORT POD_HOST_ADDR POD_NETNS_PREFIX
start pod-agent python3 "$CLUSTER_DIR/pod_agent.py"

cat >"$E2E_DIR/prometheus/prometheus.yml" <<EOF
# Scrape targets are files in targets/: tests and the demo add one per component, and
# Prometheus picks them up without a restart.
global:
  scrape_interval: 2s
  evaluation_interval: 2s
scrape_configs:
  - job_name: switchyard
    file_sd_configs:
      - files: ['$E2E_DIR/prometheus/targets/*.json']
        refresh_interval: 2s
EOF
start prometheus prometheus \
  --config.file "$E2E_DIR/prometheus/prometheus.yml" \
  --storage.tsdb.path "$E2E_DIR/prometheus/data" \
  --web.listen-address "127.0.0.1:$PROMETHEUS_PORT" \
  --web.enable-lifecycle \
  --log.level warn
wait_for prometheus 60 healthy prometheus

cat >"$E2E_DIR/cluster.env" <<EOF
KUBECONFIG=$KUBECONFIG_FILE
APISERVER_URL=https://127.0.0.1:$APISERVER_PORT
PROMETHEUS_URL=http://127.0.0.1:$PROMETHEUS_PORT
PROMETHEUS_TARGETS_DIR=$E2E_DIR/prometheus/targets
POD_CIDR=$POD_CIDR
POD_NETNS=${SWITCHYARD_NETNS:-switchyard-pods}
POD_HOST_ADDR=$POD_HOST_ADDR
IMAGES_INDEX=$E2E_DIR/images/index.json
HELM=$HELM_BIN_DIR/helm
KSTATUS=$KSTATUS_BIN_DIR/kstatus
KUBECONFORM=$KUBECONFORM_BIN_DIR/kubeconform
EOF
elapsed=$(awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $start_time}")
log "up in ${elapsed}s; export KUBECONFIG=$KUBECONFIG_FILE"
