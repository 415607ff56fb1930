"""A gateway that serves a set of namespaces, installed by the chart with a Role in each of
them and no cluster-wide grant: it serves exactly those namespaces' routes."""

import pathlib
import subprocess
import uuid

import requests
import yaml

from conftest import CLUSTER, E2E_DIR, REPO, ensure_tenant, kubectl, start_gateway, wait_until
from test_gateway_sdk import apply, backend, route


def test_a_gateway_scoped_to_two_namespaces_needs_and_uses_only_their_roles(controller, crds, mocks):
    suffix = uuid.uuid4().hex[:5]
    a, b, c, release = (f"e2e-ns-{x}-{suffix}" for x in ("a", "b", "c", "release"))
    for ns in (a, b, c, release):
        kubectl("create", "namespace", ns)
    try:
        rendered = subprocess.run(
            [CLUSTER["HELM"], "template", "switchyard", str(REPO / "charts" / "switchyard"),
             "--namespace", release, "--kube-version", "1.33.0", "--set", f"gateway.watchNamespaces={{{a},{b}}}",
             "--show-only", "templates/serviceaccounts.yaml", "--show-only", "templates/rbac.yaml"],
            capture_output=True, text=True, check=True).stdout
        docs = [d for d in yaml.safe_load_all(rendered) if d]
        # Nothing cluster-wide for the gateway: a Role in each namespace it serves.
        gateway_grants = {(d["kind"], d["metadata"].get("namespace")) for d in docs
                          if d["metadata"]["name"] == "switchyard-gateway" and "Role" in d["kind"]}
        assert gateway_grants == {("Role", a), ("RoleBinding", a), ("Role", b), ("RoleBinding", b)}
        # The controller's cluster-wide grants are the session's already (same names).
        kubectl("apply", "-f", "-", input="\n---\n".join(
            yaml.safe_dump(d) for d in docs if "switchyard-controller" not in d["metadata"]["name"]))
        who = f"system:serviceaccount:{release}:switchyard-gateway"

        def can(*args):
            return kubectl("auth", "can-i", *args, f"--as={who}", check=False).stdout.strip() == "yes"

        assert can("list", "modelroutes.switchyard.dev", "-n", a) and can("watch", "secrets", "-n", b)
        assert not can("list", "modelroutes.switchyard.dev", "-n", c)
        assert not can("list", "modelroutes.switchyard.dev", "-A")
        admin = yaml.safe_load(pathlib.Path(CLUSTER["KUBECONFIG"]).read_text())
        admin["users"][0]["user"]["as"] = who
        kubeconfig = E2E_DIR / f"gateway-{suffix}.kubeconfig"
        kubeconfig.write_text(yaml.safe_dump(admin))

        mock = mocks("openai")
        keys = {}
        for ns in (a, b, c):
            apply(ns, backend("openai", mock, "gpt-4o"), route(f"chat-{ns}", [("openai", 100)]))
            keys[ns] = ensure_tenant(ns, f"sk-{ns}")
        gw = start_gateway(str(kubeconfig), a, "--namespace", b, key=keys[a])
        try:
            def models(key):
                r = requests.get(f"{gw.url}/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=5)
                return r.status_code, sorted(m["id"] for m in r.json().get("data", []))

            assert wait_until(lambda: models(keys[b]) == (200, [f"chat-{b}"]) and models(keys[b]), timeout=30,
                              what="namespace b's route served")
            assert models(keys[a]) == (200, [f"chat-{a}"])
            # Namespace c is not served: its Tenant is unknown here, its route is not listed.
            assert models(keys[c])[0] == 401
            r = requests.post(f"{gw.url}/v1/chat/completions", headers={"Authorization": f"Bearer {keys[b]}"},
                              json={"model": f"chat-{b}", "messages": [{"role": "user", "content": "hi"}]}, timeout=10)
            assert r.status_code == 200, r.text
            assert "forbidden" not in gw.proc.output().lower(), "the gateway asked for more than it may"
        finally:
            gw.proc.stop()
            (E2E_DIR / "prometheus" / "targets" / f"{gw.job}.json").unlink(missing_ok=True)
    finally:
        for ns in (a, b, c, release):
            kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_rendered_namespaces_are_joined_into_one_flag():
    out = subprocess.run(
        [CLUSTER["HELM"], "template", "switchyard", str(REPO / "charts" / "switchyard"), "--kube-version", "1.33.0",
         "--set", "gateway.watchNamespaces={team-a,team-b}", "--show-only", "templates/gateway.yaml"],
        capture_output=True, text=True, check=True).stdout
    assert "--namespace=team-a,team-b" in out
    assert "--admin-addr=0.0.0.0:9090" in out
