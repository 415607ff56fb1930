#!/usr/bin/env bash
# What `make bench` needs beyond the test suite, installed once and cached by version:
# wrk and nginx-light (Debian), oha (crates.io) and the LiteLLM proxy (PyPI, own venv).
# Prints the environment the benchmark scripts read.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../cluster/env.sh"
OHA_VERSION=1.16.0
# The newest LiteLLM whose dependencies this machine's package index has in full.
LITELLM_VERSION=1.80.0

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || missing+=(nginx-light)
command -v taskset >/dev/null || missing+=(util-linux)
if ((${#missing[@]})); then
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  sudo=""; [[ $(id -u) -eq 0 ]] || sudo=sudo
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

oha_root=$SWITCHYARD_CACHE/oha-$OHA_VERSION
if [[ ! -x $oha_root/bin/oha ]]; then
  log "building oha $OHA_VERSION (once)"
  cargo install --quiet --locked --version "$OHA_VERSION" oha --root "$oha_root"
fi

litellm_venv=$SWITCHYARD_CACHE/litellm-$LITELLM_VERSION
if [[ ! -x $litellm_venv/bin/litellm ]]; then
  log "installing litellm[proxy] $LITELLM_VERSION (once)"
  rm -rf "$litellm_venv"
  python3 -m venv "$litellm_venv"
  "$litellm_venv/bin/pip" install -q --disable-pip-version-check "litellm[proxy]==$LITELLM_VERSION"
fi

echo "OHA_BIN=$oha_root/bin/oha"
echo "LITELLM_BIN=$litellm_venv/bin/litellm"
echo "LITELLM_VERSION=$LITELLM_VERSION"
