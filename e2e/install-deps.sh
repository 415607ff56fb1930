#!/usr/bin/env bash
# Installs everything the demo and the tests need on a fresh machine, and nothing twice:
# Debian packages (Prometheus, iproute2, openssl, curl, umoci, skopeo), the Rust lint components, a Python
# virtualenv with the test clients, and the cluster binaries built from their Go modules.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/cluster/versions.sh"
log() { printf '[deps] %s\n' "$*" >&2; }

missing=()
command -v prometheus >/dev/null || missing+=(prometheus)
command -v ip >/dev/null || missing+=(iproute2)
command -v openssl >/dev/null || missing+=(openssl)
command -v curl >/dev/null || missing+=(curl ca-certificates)
# The image is assembled without a container engine: umoci writes the OCI layout, skopeo
# reads its config back in the tests.
command -v umoci >/dev/null || missing+=(umoci)
command -v skopeo >/dev/null || missing+=(skopeo)
if ((${#missing[@]})); then
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  sudo=""; [[ $(id -u) -eq 0 ]] || sudo=sudo
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

for tool in go cargo python3 kubectl; do
  command -v "$tool" >/dev/null || { log "$tool is required but not installed"; exit 1; }
done
if command -v rustup >/dev/null; then
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt
fi

# The virtualenv is keyed by the requirements file, so a changed pin makes a new one.
req_hash=$(sha256sum "$here/requirements.txt" | cut -c1-12)
venv=$SWITCHYARD_CACHE/venv-$req_hash
if [[ ! -x $venv/bin/pytest ]]; then
  log "creating $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements.txt"
fi
ln -sfn "$venv" "$SWITCHYARD_CACHE/venv"

bash "$here/cluster/build.sh"
# krew and its manifest validator, for the plugin packaging test.
bash "$here/../plugins/krew/tools.sh" >/dev/null
