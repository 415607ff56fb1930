# Pinned versions of everything the local cluster runs. Sourced by the cluster scripts.
# Changing a version changes the cache key, so the next `up` rebuilds only what changed.
K8S_VERSION=v1.33.13
K8S_STAGING_VERSION=v0.33.13
ETCD_VERSION=v3.5.24
KWOK_VERSION=v0.7.0
# Renders the Helm chart in tests (its RBAC is what the e2e controller runs under).
HELM_VERSION=v3.19.0
# kstatus (sigs.k8s.io/cli-utils) judges the controller's conditions in the suite.
CLI_UTILS_VERSION=v0.37.2
# The Argo CD release whose Lua runtime e2e/argocd-lua reproduces (its go.mod pins the same
# gopher-lua) to run argocd/'s health checks and actions in the suite.
ARGOCD_VERSION=v3.5.1
# kubeconform validates the chart's rendered manifests in the suite, strictly, against JSON
# schemas the test generates from the local API server's OpenAPI (it downloads none).
KUBECONFORM_VERSION=v0.7.0
# The Prometheus Operator whose ServiceMonitor and PodMonitor CRDs the chart's monitors are
# validated against (the CRDs are taken from its Go module).
PROMETHEUS_OPERATOR_VERSION=v0.85.0
# Kubernetes 1.33 is built and tested with Go 1.24; the Go module proxy serves that toolchain.
GO_TOOLCHAIN=go1.24.13

SWITCHYARD_CACHE=${SWITCHYARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/switchyard}
K8S_BIN_DIR=$SWITCHYARD_CACHE/kubernetes-$K8S_VERSION
ETCD_BIN_DIR=$SWITCHYARD_CACHE/etcd-$ETCD_VERSION
KWOK_BIN_DIR=$SWITCHYARD_CACHE/kwok-$KWOK_VERSION
HELM_BIN_DIR=$SWITCHYARD_CACHE/helm-$HELM_VERSION
KUBECONFORM_BIN_DIR=$SWITCHYARD_CACHE/kubeconform-$KUBECONFORM_VERSION
PROMETHEUS_OPERATOR_CRDS_DIR=$SWITCHYARD_CACHE/prometheus-operator-crds-$PROMETHEUS_OPERATOR_VERSION
# Keyed by the cli-utils version and the wrapper's own source, so editing it rebuilds it.
KSTATUS_SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../kstatus" && pwd)
KSTATUS_BIN_DIR=$SWITCHYARD_CACHE/kstatus-$CLI_UTILS_VERSION-$(cat "$KSTATUS_SRC_DIR/main.go" "$KSTATUS_SRC_DIR/go.sum" | sha256sum | cut -c1-8)
# Keyed by the Argo CD version and the tool's own source, so editing it rebuilds it.
ARGOCD_LUA_SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../argocd-lua" && pwd)
ARGOCD_LUA_BIN_DIR=$SWITCHYARD_CACHE/argocd-lua-$ARGOCD_VERSION-$(cat "$ARGOCD_LUA_SRC_DIR"/*.go "$ARGOCD_LUA_SRC_DIR/go.sum" | sha256sum | cut -c1-8)
