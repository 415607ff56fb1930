#!/usr/bin/env bash
# Creates the cluster's CA, serving and client certificates, service-account keys and the
# kubeconfigs of each component. Everything is fresh per cluster and stays in $PKI_DIR.
set -euo pipefail
. "$(dirname "$0")/env.sh"
cd "$PKI_DIR"

openssl genrsa -out ca.key 2048 2>/dev/null
openssl req -x509 -new -nodes -key ca.key -sha256 -days 30 -subj "/CN=switchyard-e2e-ca" -out ca.crt 2>/dev/null

# cert NAME SUBJECT [SANs]: a key and a certificate signed by the CA.
cert() {
  local name=$1 subj=$2 sans=${3:-}
  openssl genrsa -out "$name.key" 2048 2>/dev/null
  openssl req -new -key "$name.key" -subj "$subj" -out "$name.csr" 2>/dev/null
  local ext="extendedKeyUsage=clientAuth,serverAuth"
  [[ -n $sans ]] && ext+=$'\n'"subjectAltName=$sans"
  openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -sha256 \
    -extfile <(printf '%s\n' "$ext") -out "$name.crt" 2>/dev/null
  rm -f "$name.csr"
}

# Pods reach the API server at the host side of their network ($POD_HOST_ADDR, netns.sh).
cert apiserver "/CN=kube-apiserver" \
  "IP:127.0.0.1,IP:$POD_HOST_ADDR,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
cert admin "/O=system:masters/CN=switchyard-e2e-admin"
cert controller-manager "/CN=system:kube-controller-manager"
cert scheduler "/CN=system:kube-scheduler"
# kwok plays every kubelet; it needs to write node and pod status across the cluster.
cert kwok "/O=system:masters/CN=kwok"

openssl genrsa -out sa.key 2048 2>/dev/null
openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null

kubeconfig() {
  local name=$1 out=$2
  cat >"$out" <<KC
apiVersion: v1
kind: Config
clusters:
- name: switchyard-e2e
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority: $PKI_DIR/ca.crt
users:
- name: $name
  user:
    client-certificate: $PKI_DIR/$name.crt
    client-key: $PKI_DIR/$name.key
contexts:
- name: switchyard-e2e
  context: {cluster: switchyard-e2e, user: $name}
current-context: switchyard-e2e
KC
}
kubeconfig admin "$KUBECONFIG_FILE"
for c in controller-manager scheduler kwok; do kubeconfig "$c" "$PKI_DIR/$c.kubeconfig"; done
