#!/usr/bin/env bash
# Builds the control-plane binaries (kube-apiserver, kube-controller-manager, kube-scheduler),
# etcd and kwok from their Go modules into a cache keyed by version. A binary already in the
# cache is never rebuilt, so only the first run on a machine pays for the build.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions.sh"

export GOTOOLCHAIN=$GO_TOOLCHAIN GOFLAGS=-mod=mod CGO_ENABLED=0
log() { printf '[build] %s\n' "$*" >&2; }

# k8s.io/kubernetes requires its staging modules at v0.0.0; a wrapper module replaces each
# with its published release so the commands can be built straight from the module proxy.
STAGING=(api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider
  cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api
  cri-client csi-translation-lib dynamic-resource-allocation endpointslice externaljwt kms
  kube-aggregator kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics
  mount-utils pod-security-admission sample-apiserver sample-cli-plugin sample-controller)

build_kubernetes() {
  local want=(kube-apiserver kube-controller-manager kube-scheduler) missing=()
  for b in "${want[@]}"; do [[ -x $K8S_BIN_DIR/$b ]] || missing+=("$b"); done
  ((${#missing[@]})) || return 0
  log "building ${missing[*]} $K8S_VERSION (first run only; cached in $K8S_BIN_DIR)"
  local mod=$SWITCHYARD_CACHE/src/kubernetes-$K8S_VERSION
  mkdir -p "$mod" "$K8S_BIN_DIR"
  {
    echo "module switchyard.dev/e2e/kubernetes"
    echo
    echo "go 1.24.0"
    echo
    echo "godebug default=go1.24"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    for m in "${STAGING[@]}"; do echo "	k8s.io/$m => k8s.io/$m $K8S_STAGING_VERSION"; done
    echo ")"
  } >"$mod/go.mod"
  printf 'package tools\n\nimport (\n\t_ "k8s.io/kubernetes/cmd/kube-apiserver"\n\t_ "k8s.io/kubernetes/cmd/kube-controller-manager"\n\t_ "k8s.io/kubernetes/cmd/kube-scheduler"\n)\n' >"$mod/tools.go"
  (cd "$mod" && go mod tidy >/dev/null 2>&1 || go mod download)
  local ld="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION"
  ld+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=33"
  ld+=" -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
  ld+=" -X k8s.io/component-base/version.gitTreeState=clean"
  for b in "${missing[@]}"; do
    (cd "$mod" && go build -trimpath -ldflags "$ld" -o "$K8S_BIN_DIR/$b.tmp" "k8s.io/kubernetes/cmd/$b")
    mv "$K8S_BIN_DIR/$b.tmp" "$K8S_BIN_DIR/$b"
    log "built $b"
  done
}

build_etcd() {
  [[ -x $ETCD_BIN_DIR/etcd ]] && return 0
  log "building etcd $ETCD_VERSION"
  # `go install` refuses etcd's replace directives; a wrapper module builds it.
  local mod=$SWITCHYARD_CACHE/src/etcd-$ETCD_VERSION
  mkdir -p "$mod" "$ETCD_BIN_DIR"
  printf 'module switchyard.dev/e2e/etcd\n\ngo 1.24.0\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" >"$mod/go.mod"
  printf 'package tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' >"$mod/tools.go"
  (cd "$mod" && go mod tidy >/dev/null 2>&1 || go mod download)
  (cd "$mod" && go build -trimpath -ldflags "-s -w" -o "$ETCD_BIN_DIR/etcd.tmp" go.etcd.io/etcd/server/v3)
  mv "$ETCD_BIN_DIR/etcd.tmp" "$ETCD_BIN_DIR/etcd"
}

build_kwok() {
  [[ -x $KWOK_BIN_DIR/kwok ]] && return 0
  log "building kwok $KWOK_VERSION"
  mkdir -p "$KWOK_BIN_DIR"
  GOFLAGS= GOBIN=$KWOK_BIN_DIR.tmp go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  mv "$KWOK_BIN_DIR.tmp/kwok" "$KWOK_BIN_DIR/kwok"
  rmdir "$KWOK_BIN_DIR.tmp"
}

build_helm() {
  [[ -x $HELM_BIN_DIR/helm ]] && return 0
  log "building helm $HELM_VERSION"
  mkdir -p "$HELM_BIN_DIR"
  # Helm declares the Go version it needs; let the go command pick that toolchain.
  GOTOOLCHAIN=auto GOFLAGS= GOBIN=$HELM_BIN_DIR.tmp go install -trimpath -ldflags "-s -w" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  mv "$HELM_BIN_DIR.tmp/helm" "$HELM_BIN_DIR/helm"
  rmdir "$HELM_BIN_DIR.tmp"
}

build_kubeconform() {
  [[ -x $KUBECONFORM_BIN_DIR/kubeconform ]] && return 0
  log "building kubeconform $KUBECONFORM_VERSION"
  mkdir -p "$KUBECONFORM_BIN_DIR"
  GOFLAGS= GOBIN=$KUBECONFORM_BIN_DIR.tmp go install -trimpath -ldflags "-s -w -X main.version=$KUBECONFORM_VERSION" \
    "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION"
  mv "$KUBECONFORM_BIN_DIR.tmp/kubeconform" "$KUBECONFORM_BIN_DIR/kubeconform"
  rmdir "$KUBECONFORM_BIN_DIR.tmp"
}

# The monitoring.coreos.com CRDs, copied out of the Prometheus Operator's Go module (the module
# proxy serves its source; nothing of it is built).
fetch_prometheus_operator_crds() {
  local crds=(servicemonitors podmonitors) mod f
  [[ -f $PROMETHEUS_OPERATOR_CRDS_DIR/monitoring.coreos.com_podmonitors.yaml ]] && return 0
  log "fetching the Prometheus Operator $PROMETHEUS_OPERATOR_VERSION CRDs"
  mod=github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION
  (cd / && GOFLAGS= go mod download "$mod")
  rm -rf "$PROMETHEUS_OPERATOR_CRDS_DIR.tmp"
  mkdir -p "$PROMETHEUS_OPERATOR_CRDS_DIR.tmp"
  for f in "${crds[@]}"; do
    cp "$(go env GOMODCACHE)/$mod/example/prometheus-operator-crd/monitoring.coreos.com_$f.yaml" "$PROMETHEUS_OPERATOR_CRDS_DIR.tmp/"
  done
  # The module cache is read-only; the copies need not be.
  chmod -R u+w "$PROMETHEUS_OPERATOR_CRDS_DIR.tmp"
  mv "$PROMETHEUS_OPERATOR_CRDS_DIR.tmp" "$PROMETHEUS_OPERATOR_CRDS_DIR"
}

build_kstatus() {
  [[ -x $KSTATUS_BIN_DIR/kstatus ]] && return 0
  log "building kstatus (sigs.k8s.io/cli-utils $CLI_UTILS_VERSION)"
  mkdir -p "$KSTATUS_BIN_DIR"
  # e2e/kstatus pins cli-utils in its go.mod and go.sum.
  (cd "$KSTATUS_SRC_DIR" && GOFLAGS=-mod=readonly go build -trimpath -ldflags "-s -w" -o "$KSTATUS_BIN_DIR/kstatus.tmp" .)
  mv "$KSTATUS_BIN_DIR/kstatus.tmp" "$KSTATUS_BIN_DIR/kstatus"
}

build_argocd_lua() {
  [[ -x $ARGOCD_LUA_BIN_DIR/argocd-lua ]] && return 0
  log "building argocd-lua (the Lua runtime of Argo CD $ARGOCD_VERSION)"
  mkdir -p "$ARGOCD_LUA_BIN_DIR"
  # e2e/argocd-lua pins gopher-lua and its other modules in its go.mod and go.sum.
  (cd "$ARGOCD_LUA_SRC_DIR" && GOFLAGS=-mod=readonly go build -trimpath -ldflags "-s -w" -o "$ARGOCD_LUA_BIN_DIR/argocd-lua.tmp" .)
  mv "$ARGOCD_LUA_BIN_DIR/argocd-lua.tmp" "$ARGOCD_LUA_BIN_DIR/argocd-lua"
}

start=$(date +%s)
build_etcd
build_kwok
build_helm
build_kubeconform
fetch_prometheus_operator_crds
build_kstatus
build_argocd_lua
build_kubernetes
log "all binaries present ($(($(date +%s) - start))s)"
