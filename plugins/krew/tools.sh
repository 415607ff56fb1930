#!/usr/bin/env bash
# Builds krew and its manifest validator (sigs.k8s.io/krew) from their Go module into a cache
# keyed by version, and prints that directory. The tests install the plugin with the real
# krew from the manifest and archive that package.sh makes; a second run never rebuilds.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../e2e/cluster/versions.sh"
KREW_VERSION=v0.4.3
dir=$SWITCHYARD_CACHE/krew-$KREW_VERSION
if [[ ! -x $dir/krew || ! -x $dir/validate-krew-manifest ]]; then
  printf '[build] building krew %s (first run only; cached in %s)\n' "$KREW_VERSION" "$dir" >&2
  rm -rf "$dir.tmp"
  GOTOOLCHAIN=$GO_TOOLCHAIN GOFLAGS= CGO_ENABLED=0 GOBIN=$dir.tmp go install -trimpath -ldflags "-s -w" \
    "sigs.k8s.io/krew/cmd/krew@$KREW_VERSION" "sigs.k8s.io/krew/cmd/validate-krew-manifest@$KREW_VERSION"
  mkdir -p "$dir"
  mv "$dir.tmp/krew" "$dir.tmp/validate-krew-manifest" "$dir/"
  rmdir "$dir.tmp"
fi
echo "$dir"
