#!/usr/bin/env bash
# The demo: a real local Kubernetes with NVIDIA GPU node pools, Switchyard's CRDs, the
# example backends and route, and the controller reporting their state.
# Leaves the cluster running; `bash e2e/cluster/down.sh` stops everything it started.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
. "$here/cluster/env.sh"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$SWITCHYARD_CACHE/target}
ns=switchyard-demo
cd "$repo"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

bash "$here/install-deps.sh"
cargo build --quiet
bash "$here/cluster/up.sh"
export KUBECONFIG=$KUBECONFIG_FILE

say "GPU node pools (simulated by kwok, labelled like GPU feature discovery)"
kubectl get nodes -L switchyard.dev/node-pool,nvidia.com/gpu.product,nvidia.com/gpu.count

say "Installing the CRDs"
kubectl apply --server-side -f crds/
kubectl wait --for=condition=Established crd/inferencebackends.switchyard.dev crd/modelroutes.switchyard.dev crd/tenants.switchyard.dev --timeout=60s

if [[ ! -e $PID_DIR/switchyard-controller.pid ]] || ! kill -0 "$(cat "$PID_DIR/switchyard-controller.pid")" 2>/dev/null; then
  kubectl create namespace switchyard-system --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  say "Starting the controller (logs: $LOG_DIR/switchyard-controller.log)"
  nohup "$CARGO_TARGET_DIR/debug/switchyard" controller --metrics-addr 127.0.0.1:18080 --unschedulable-grace 5s \
    --prometheus-url "http://127.0.0.1:$PROMETHEUS_PORT" \
    >"$LOG_DIR/switchyard-controller.log" 2>&1 </dev/null &
  echo $! >"$PID_DIR/switchyard-controller.pid"
fi

say "Applying examples/ in namespace $ns"
kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl apply -n "$ns" -f examples/
kubectl wait -n "$ns" --for=condition=Ready mr/chat --timeout=60s >/dev/null
say "Waiting for the self-hosted Llama: scheduled on H100 nodes, then 200 warm-up requests per pod"
kubectl wait -n "$ns" --for=condition=Ready ib/llama-h100 --timeout=120s
kubectl get -n "$ns" pods -l switchyard.dev/backend=llama-h100 -o wide

say "kubectl get ib,mr -o wide"
kubectl get -n "$ns" ib,mr -o wide

say "A backend asking for more GPUs than any L40S node has (8 > 4) says why it cannot run"
kubectl apply -n "$ns" -f - <<'YAML'
apiVersion: switchyard.dev/v1alpha1
kind: InferenceBackend
metadata: {name: llama-70b-l40s}
spec:
  selfHosted:
    runtime: vllm
    model: meta-llama/Llama-3.1-70B-Instruct
    gpu: {count: 8, product: NVIDIA-L40S}
YAML
kubectl wait -n "$ns" --for=condition=Stalled ib/llama-70b-l40s --timeout=60s >/dev/null
kubectl get -n "$ns" ib llama-70b-l40s -o jsonpath='{range .status.conditions[?(@.type=="Stalled")]}Stalled={.status} reason={.reason}{"\n"}  {.message}{"\n"}{end}'

say "An invalid change is rejected at admission"
kubectl patch -n "$ns" mr chat --type merge -p '{"spec":{"rollout":{"steps":[50,20]}}}' || true

say "Staged migrations judged by Prometheus"
"$SWITCHYARD_CACHE/venv/bin/python" "$here/demo_story.py"

cat <<MSG

The cluster is still running:
  export KUBECONFIG=$KUBECONFIG_FILE
  kubectl get -n $ns switchyard
  $CARGO_TARGET_DIR/debug/switchyard status assistant -n $ns   # or: kubectl switchyard status … with the binary on PATH as kubectl-switchyard
  bash e2e/cluster/down.sh     # stops every process the demo started
MSG
