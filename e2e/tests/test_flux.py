"""The Flux example (examples/flux/): its Kustomization's health checks name objects that the
source and path it deploys really contain, with the apiVersion, kind, name and namespace
Flux will look up; and deployed on the local cluster, with the keys created out of band as
its README says, every health-checked object turns Current under kstatus, which is how
Flux judges them."""

import fnmatch
import json
import subprocess

import yaml

from conftest import CLUSTER, REPO, kubectl, wait_until

FLUX = REPO / "examples" / "flux"


def flux_objects():
    docs = [d for f in sorted(FLUX.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]
    by_kind = {d["kind"]: d for d in docs}
    assert sorted(by_kind) == ["GitRepository", "Kustomization"] and len(docs) == 2, [d["kind"] for d in docs]
    return by_kind["GitRepository"], by_kind["Kustomization"]


def ignored(path, is_dir, patterns):
    """Whether one path matches the source's ignore rules (gitignore: the last matching
    pattern decides). Only anchored patterns, the kind the example uses, are understood."""
    verdict = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        p = pattern.lstrip("!")
        assert p.startswith("/"), f"the test understands anchored patterns only, not {pattern!r}"
        dir_only = p.endswith("/")
        parts = p.strip("/").split("/")
        if dir_only and not is_dir:
            continue
        names = path.split("/")
        if len(names) == len(parts) and all(fnmatch.fnmatchcase(n, q) for n, q in zip(names, parts)):
            verdict = not negated
    return verdict


def deployed_files(source, kustomization):
    """The files kustomize-controller builds from: every YAML file under spec.path of the
    source's artifact (which leaves out what spec.ignore excludes, and everything inside an
    excluded directory)."""
    patterns = [line.strip() for line in source["spec"].get("ignore", "").splitlines()
                if line.strip() and not line.strip().startswith("#")]
    root = (REPO / kustomization["spec"]["path"]).resolve()
    assert root.is_dir() and REPO in root.parents, kustomization["spec"]["path"]
    files = []
    for f in sorted(root.rglob("*")):
        rel = f.relative_to(REPO).as_posix().split("/")
        parents = ["/".join(rel[:i]) for i in range(1, len(rel))]
        if any(ignored(p, True, patterns) for p in parents) or ignored("/".join(rel), f.is_dir(), patterns):
            continue
        if f.is_file() and f.suffix in (".yaml", ".yml", ".json"):
            files.append(f)
    return files


def test_the_flux_example_health_checks_what_it_deploys(controller, namespace):
    source, ks = flux_objects()
    assert source["apiVersion"] == "source.toolkit.fluxcd.io/v1"
    assert ks["apiVersion"] == "kustomize.toolkit.fluxcd.io/v1"
    ref = ks["spec"]["sourceRef"]
    assert (ref["kind"], ref["name"], ref.get("namespace", ks["metadata"]["namespace"])) == \
        ("GitRepository", source["metadata"]["name"], source["metadata"]["namespace"])
    # With wait: true Flux ignores healthChecks; a timeout bounds the wait.
    assert not ks["spec"].get("wait") and ks["spec"].get("timeout")

    files = deployed_files(source, ks)
    names = {f.name for f in files}
    assert "route-chat.yaml" in names and not any(f.is_relative_to(FLUX) for f in files), names
    assert "00-credentials.yaml" not in names, "provider keys are not synced from Git"
    objects = {}
    for f in files:
        for doc in yaml.safe_load_all(f.read_text()):
            # Every YAML file Flux builds from must be a Kubernetes manifest.
            assert doc and doc.get("apiVersion") and doc.get("kind"), f"{f} is not a Kubernetes manifest"
            objects[(doc["apiVersion"], doc["kind"], doc["metadata"]["name"])] = doc

    target = ks["spec"]["targetNamespace"]
    checks = ks["spec"]["healthChecks"]
    for c in checks:
        assert (c["apiVersion"], c["kind"], c["name"]) in objects, f"health check of an object not deployed: {c}"
        assert c["namespace"] == target, c
    checked = {(c["kind"], c["name"]) for c in checks}
    routes = [o for (_, kind, _), o in objects.items() if kind == "ModelRoute"]
    assert routes and all(("ModelRoute", r["metadata"]["name"]) in checked for r in routes)
    for r in routes:
        used = [b["name"] for b in r["spec"]["backends"]] + [b["name"] for b in r["spec"].get("fallback", [])]
        missing = [b for b in used if ("InferenceBackend", b) not in checked]
        assert not missing, f"route {r['metadata']['name']} uses backends without a health check: {missing}"

    # Deployed as Flux would (here into the test's namespace), with the provider keys created
    # out of band as the README says.
    kubectl("apply", "-f", str(REPO / "examples" / "00-credentials.yaml"), namespace=namespace)
    for f in files:
        kubectl("apply", "-f", str(f), namespace=namespace)

    def kstatus(c):
        ref = f"{c['kind']}.{c['apiVersion'].split('/')[1]}.{c['apiVersion'].split('/')[0]}/{c['name']}"
        obj = kubectl("get", ref, "-o", "json", namespace=namespace).stdout
        out = subprocess.run([CLUSTER["KSTATUS"]], input=obj, capture_output=True, text=True, check=True)
        return json.loads(out.stdout)

    def all_current():
        statuses = {c["name"]: kstatus(c) for c in checks}
        failed = {n: s for n, s in statuses.items() if s["status"] == "Failed"}
        assert not failed, f"Flux would fail the Kustomization at once: {failed}"
        return all(s["status"] == "Current" for s in statuses.values()) or None

    wait_until(all_current, timeout=180, interval=1, what="every health-checked object Current under kstatus")
