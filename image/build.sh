#!/usr/bin/env bash
# Builds Switchyard's OCI image without a container engine: a root filesystem assembled from
# the binary, the shared libraries `ldd` names (with their Debian copyright files), the host's
# CA certificates and a non-root user, packed with umoci into an OCI layout and an
# oci-archive, with OCI labels and an SPDX SBOM (inside the image and beside it).
# Same image as image/Dockerfile builds with Docker; e2e/tests/test_image.py keeps them equal.
#
#   image/build.sh [--binary PATH] [--out DIR] [--tag TAG]
#
# Without --binary it builds the release binary. The result: DIR/layout (OCI layout, tag
# TAG), DIR/switchyard-TAG.oci.tar (the same as an oci-archive, for `skopeo copy
# oci-archive:...`), DIR/sbom.spdx.json.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)

binary="" out="$repo/target/image" tag=""
while (($#)); do
  case $1 in
  --binary) binary=$2; shift 2 ;;
  --out) out=$2; shift 2 ;;
  --tag) tag=$2; shift 2 ;;
  *) echo "usage: $0 [--binary PATH] [--out DIR] [--tag TAG]" >&2; exit 2 ;;
  esac
done
for tool in umoci ldd python3 cargo; do
  command -v "$tool" >/dev/null || { echo "$tool is required (e2e/install-deps.sh installs it)" >&2; exit 1; }
done

version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/Cargo.toml" | head -1)
source_url=$(sed -n 's/^repository = "\(.*\)"/\1/p' "$repo/Cargo.toml" | head -1)
licence=$(sed -n 's/^license = "\(.*\)"/\1/p' "$repo/Cargo.toml" | head -1)
revision=$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)
tag=${tag:-$version}
if [[ -z $binary ]]; then
  (cd "$repo" && cargo build --release --locked --quiet)
  binary=${CARGO_TARGET_DIR:-$repo/target}/release/switchyard
fi
[[ -x $binary ]] || { echo "no executable at $binary" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
mkdir -p "$root"/{usr/local/bin,etc/ssl/certs,tmp,usr/share/doc/switchyard}
chmod 1777 "$root/tmp"
install -m 0755 "$binary" "$root/usr/local/bin/switchyard"

# The shared libraries the binary loads, at the paths the loader looks for them (symlinks
# resolved, so the image needs no other file), each with its Debian package's copyright.
libs=()
while read -r path; do
  [[ -n $path ]] || continue
  mkdir -p "$root$(dirname "$path")"
  cp -L "$path" "$root$path"
  libs+=("$path")
  # dpkg knows a file by the path it shipped it at, which merged /usr may hide behind a link.
  pkg=$( (dpkg -S "$path" 2>/dev/null || dpkg -S "$(readlink -f "$path")" 2>/dev/null) | head -1 | cut -d: -f1 || true)
  if [[ -n $pkg && -e /usr/share/doc/$pkg/copyright ]]; then
    mkdir -p "$root/usr/share/doc/$pkg"
    cp "/usr/share/doc/$pkg/copyright" "$root/usr/share/doc/$pkg/copyright"
  fi
done < <(ldd "$binary" | awk '/=> \//{print $3} /^[ \t]*\//{print $1}')

cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
# nonroot (65532) as distroless images have it, so runAsNonRoot and `USER` agree.
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$root/etc/group"
mkdir -p "$root/home/nonroot" && chown 65532:65532 "$root/home/nonroot"

(cd "$repo" && cargo metadata --format-version 1 --locked --filter-platform x86_64-unknown-linux-gnu) >"$work/metadata.json"
python3 "$here/sbom.py" --metadata "$work/metadata.json" --binary "$root/usr/local/bin/switchyard" \
  --version "$version" --source "$source_url" --revision "$revision" "${libs[@]}" >"$work/sbom.spdx.json"
cp "$work/sbom.spdx.json" "$root/usr/share/doc/switchyard/sbom.spdx.json"

# Every file from one fixed time and owned by root (but the user's home), so the same
# inputs give the same layer.
find "$root" -exec touch -h -d @0 {} +

rm -rf "$out/layout"
mkdir -p "$out"
layout=$out/layout
umoci init --layout "$layout"
umoci new --image "$layout:$tag"
umoci insert --image "$layout:$tag" --history.created_by "image/build.sh" "$root" /
umoci config --image "$layout:$tag" \
  --os linux --architecture amd64 \
  --config.user 65532:65532 \
  --config.entrypoint /usr/local/bin/switchyard \
  --config.workingdir / \
  --config.env PATH=/usr/local/bin:/usr/bin:/bin \
  --config.env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
  --config.label "org.opencontainers.image.title=switchyard" \
  --config.label "org.opencontainers.image.description=Switchyard controller, gateway and kubectl plugin" \
  --config.label "org.opencontainers.image.version=$version" \
  --config.label "org.opencontainers.image.source=$source_url" \
  --config.label "org.opencontainers.image.revision=$revision" \
  --config.label "org.opencontainers.image.licenses=$licence" \
  --history.created_by "image/build.sh config"
umoci gc --layout "$layout"
cp "$work/sbom.spdx.json" "$out/sbom.spdx.json"
rm -f "$out"/switchyard-*.oci.tar
tar -C "$layout" -cf "$out/switchyard-$tag.oci.tar" .
echo "$out/layout:$tag"
