# Where the local cluster keeps its state and which loopback ports it uses. Sourced by the
# cluster scripts; tests read the same values from $E2E_DIR/cluster.env.
CLUSTER_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$CLUSTER_DIR/../.." && pwd)
. "$CLUSTER_DIR/versions.sh"

E2E_DIR=${SWITCHYARD_E2E_DIR:-$REPO_ROOT/.e2e}
PKI_DIR=$E2E_DIR/pki
PID_DIR=$E2E_DIR/pids
LOG_DIR=$E2E_DIR/logs
KUBECONFIG_FILE=$E2E_DIR/kubeconfig

ETCD_PORT=${ETCD_PORT:-23790}
ETCD_PEER_PORT=${ETCD_PEER_PORT:-23800}
APISERVER_PORT=${APISERVER_PORT:-16443}
KCM_PORT=${KCM_PORT:-20257}
SCHEDULER_PORT=${SCHEDULER_PORT:-20259}
KWOK_PORT=${KWOK_PORT:-20247}
PROMETHEUS_PORT=${PROMETHEUS_PORT:-19090}

# Pod addresses kwok hands out; each node gets a /24 of it.
POD_CIDR=10.244.0.0/16
SERVICE_CIDR=10.96.0.0/16
# The host's side of the pod network (netns.sh): pods reach the API server, Prometheus and
# the mock providers here, as a node's pods reach its host network.
POD_HOST_ADDR=169.254.244.1
# Network namespaces of pods that run a loaded image (pod_runtime.py) share this prefix.
POD_NETNS_PREFIX=swy-p-

log() { printf '[cluster] %s\n' "$*" >&2; }
