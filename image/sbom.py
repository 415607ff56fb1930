#!/usr/bin/env python3
"""Writes the image's SPDX 2.3 SBOM: the switchyard binary, every crate compiled into it
(the resolve graph of `cargo metadata` from the root package, without dev-dependencies),
and the Debian packages whose shared libraries the image carries.

    sbom.py --metadata METADATA.json --binary PATH --version V --source URL --revision SHA LIB...
"""

import argparse
import hashlib
import json
import re
import subprocess
import sys
import uuid
from datetime import datetime, timezone


def spdx_id(*parts):
    return "SPDXRef-" + re.sub(r"[^A-Za-z0-9.-]", "-", "-".join(parts))


def linked_crates(metadata):
    """Packages reachable from the root through normal and build dependencies."""
    nodes = {n["id"]: n for n in metadata["resolve"]["nodes"]}
    root = metadata["resolve"]["root"]
    seen, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        for dep in nodes[pid]["deps"]:
            if any(k["kind"] in (None, "build") for k in dep["dep_kinds"]):
                todo.append(dep["pkg"])
    packages = {p["id"]: p for p in metadata["packages"]}
    return root, [packages[i] for i in sorted(seen)]


def debian_package(path):
    """(package, version) owning a library file, or None outside dpkg."""
    try:
        owner = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True, check=True)
        pkg = owner.stdout.split(":")[0].strip()
        version = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg],
                                 capture_output=True, text=True, check=True).stdout.strip()
        return pkg, version
    except (subprocess.CalledProcessError, FileNotFoundError):
        return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--metadata", required=True)
    ap.add_argument("--binary", required=True)
    ap.add_argument("--version", required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("--revision", required=True)
    ap.add_argument("libs", nargs="*")
    args = ap.parse_args()

    metadata = json.load(open(args.metadata))
    root_id, crates = linked_crates(metadata)
    digest = hashlib.sha256(open(args.binary, "rb").read()).hexdigest()

    root_ref = spdx_id("Package", "switchyard")
    packages, relationships = [], [
        {"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": root_ref}]
    for c in crates:
        is_root = c["id"] == root_id
        ref = root_ref if is_root else spdx_id("Package", "crate", c["name"], c["version"])
        pkg = {
            "SPDXID": ref,
            "name": c["name"],
            "versionInfo": c["version"],
            "supplier": "NOASSERTION",
            "downloadLocation": args.source if is_root else
            f"https://crates.io/api/v1/crates/{c['name']}/{c['version']}/download",
            "filesAnalyzed": False,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": (c.get("license") or "NOASSERTION").replace("/", " OR "),
            "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                              "referenceLocator": f"pkg:cargo/{c['name']}@{c['version']}"}],
        }
        if is_root:
            pkg["checksums"] = [{"algorithm": "SHA256", "checksumValue": digest}]
            pkg["sourceInfo"] = f"git revision {args.revision}"
        else:
            relationships.append({"spdxElementId": root_ref, "relationshipType": "CONTAINS",
                                  "relatedSpdxElement": ref})
        packages.append(pkg)
    seen = set()
    for lib in args.libs:
        # dpkg knows a file by the path it shipped it at, which merged /usr may hide.
        owner = debian_package(lib) or debian_package(
            subprocess.run(["readlink", "-f", lib], capture_output=True, text=True).stdout.strip())
        if owner is None or owner in seen:
            continue
        seen.add(owner)
        name, version = owner
        ref = spdx_id("Package", "deb", name, version)
        packages.append({
            "SPDXID": ref, "name": name, "versionInfo": version, "supplier": "Organization: Debian",
            "downloadLocation": "NOASSERTION", "filesAnalyzed": False,
            "licenseConcluded": "NOASSERTION", "licenseDeclared": "NOASSERTION",
            "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                              "referenceLocator": f"pkg:deb/debian/{name}@{version}?arch=amd64"}],
        })
        relationships.append({"spdxElementId": root_ref, "relationshipType": "DEPENDS_ON",
                              "relatedSpdxElement": ref})

    doc = {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"switchyard-{args.version}",
        "documentNamespace": f"{args.source}/sbom/{args.version}-{args.revision}-{uuid.uuid4()}",
        "creationInfo": {"created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                         "creators": ["Tool: switchyard image/sbom.py"]},
        "packages": packages,
        "relationships": relationships,
    }
    json.dump(doc, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
