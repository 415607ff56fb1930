"""The chart in namespace-scoped mode (`watchNamespaces`): the controller and the gateway get a
Role in each namespace listed and nothing cluster-wide, and both run on exactly those Roles,
serving and reconciling those namespaces only."""

import json
import pathlib
import subprocess
import time
import uuid

import pytest
import requests
import yaml

from conftest import (CLUSTER, E2E_DIR, REPO, condition, ensure_tenant, kubectl, kubectl_json, start_controller,
                      start_gateway, wait_until)
from test_controller import EXPECTED_GRANTS, RELEASE_NAMESPACE_GRANTS, SELF_REVIEW, can_i_list
from test_gateway_sdk import apply, backend, route


def render(release, namespaces, *templates):
    args = [CLUSTER["HELM"], "template", "switchyard", str(REPO / "charts" / "switchyard"),
            "--namespace", release, "--kube-version", "1.33.0",
            "--set", "watchNamespaces={" + ",".join(namespaces) + "}",
            # Without evaluation replays: their TokenReview grant is the one cluster-wide object
            # (test_chart checks it), and applied here it would rebind the session's.
            "--set", "gateway.evaluationReplays=false"]
    for t in templates:
        args += ["--show-only", f"templates/{t}.yaml"]
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def scoped(crds):
    """Namespaces a and b watched, c not, and the release namespace; the chart's accounts and
    RBAC for that setup applied (nothing of it is cluster-wide, so nothing clashes with the
    session's cluster-wide grants)."""
    suffix = uuid.uuid4().hex[:5]
    a, b, c, release = (f"e2e-ns-{x}-{suffix}" for x in ("a", "b", "c", "release"))
    for ns in (a, b, c, release):
        kubectl("create", "namespace", ns)
    docs = [d for d in yaml.safe_load_all(render(release, (a, b), "serviceaccounts", "rbac")) if d]
    kubectl("apply", "-f", "-", input="\n---\n".join(yaml.safe_dump(d) for d in docs))
    admin = yaml.safe_load(pathlib.Path(CLUSTER["KUBECONFIG"]).read_text())
    kubeconfigs = {}
    for component in ("controller", "gateway"):
        admin["users"][0]["user"]["as"] = f"system:serviceaccount:{release}:switchyard-{component}"
        kubeconfigs[component] = E2E_DIR / f"{component}-{suffix}.kubeconfig"
        kubeconfigs[component].write_text(yaml.safe_dump(admin))
    yield {"a": a, "b": b, "c": c, "release": release, "docs": docs, "kubeconfigs": kubeconfigs}
    for ns in (a, b, c, release):
        kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_the_chart_grants_roles_in_the_watched_namespaces_and_nothing_cluster_wide(scoped):
    a, b, c, release = scoped["a"], scoped["b"], scoped["c"], scoped["release"]
    grants = {(d["kind"], d["metadata"]["name"], d["metadata"].get("namespace")) for d in scoped["docs"]
              if "Role" in d["kind"]}
    assert not [g for g in grants if g[0].startswith("Cluster")], grants
    expected = {(kind, f"switchyard-{component}", ns) for kind in ("Role", "RoleBinding")
                for component in ("controller", "gateway") for ns in (a, b)}
    expected |= {("Role", "switchyard-controller-leader", release),
                 ("RoleBinding", "switchyard-controller-leader", release)}
    assert grants == expected
    # Exactly the cluster-wide mode's grants, but only where they apply; rendered without
    # evaluation replays, the gateway has no TokenReview grant (its one cluster-wide object).
    replays = "tokenreviews.authentication.k8s.io"
    want = {"controller": EXPECTED_GRANTS["controller"],
            "gateway": {k: v for k, v in EXPECTED_GRANTS["gateway"].items() if k != replays}}
    for account in ("controller", "gateway"):
        who = f"system:serviceaccount:{release}:switchyard-{account}"
        for ns in (a, b):
            assert can_i_list(account, ns, who) == want[account], (account, ns)
        assert can_i_list(account, c, who) == SELF_REVIEW, account
        assert can_i_list(account, release, who) == {**SELF_REVIEW, **RELEASE_NAMESPACE_GRANTS[account]}, account


def test_a_gateway_scoped_to_two_namespaces_serves_them_on_their_roles_only(controller, scoped, mocks):
    a, b, c = scoped["a"], scoped["b"], scoped["c"]
    mock = mocks("openai")
    keys = {}
    for ns in (a, b, c):
        apply(ns, backend("openai", mock, "gpt-4o"), route(f"chat-{ns}", [("openai", 100)]))
        keys[ns] = ensure_tenant(ns, f"sk-{ns}")
    gw = start_gateway(str(scoped["kubeconfigs"]["gateway"]), a, "--namespace", b, key=keys[a])
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


def reconciled(proc):
    """(kind, namespace, name) of every reconcile in a controller's JSON log."""
    out = set()
    for line in proc.output().splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if e.get("message") == "reconciled":
            out.add((e["kind"], e["namespace"], e["name"]))
    return out


def test_a_controller_scoped_to_two_namespaces_reconciles_them_on_their_roles_only(scoped, mocks):
    """The session's cluster-wide controller reconciles these objects too, so this one's own
    log tells what it did: every kind in a and b, nothing anywhere else, and no request the
    API server refused."""
    a, b, c, release = scoped["a"], scoped["b"], scoped["c"], scoped["release"]
    mock = mocks("openai")
    for ns in (a, b, c):
        apply(ns, backend("openai", mock, "gpt-4o", key=f"sk-provider-{ns}"), route("chat", [("openai", 100)]))
        ensure_tenant(ns)
    proc = start_controller(lease_namespace=release, name="scoped-controller",
                            kubeconfig=str(scoped["kubeconfigs"]["controller"]),
                            extra=["--namespace", f"{a},{b}"], env={"RUST_LOG": "info,switchyard=debug", "SWITCHYARD_LOG_JSON": "true"})
    try:
        want = {(kind, ns, name) for ns in (a, b)
                for kind, name in (("inferencebackend", "openai"), ("modelroute", "chat"), ("tenant", "e2e-app"))}
        wait_until(lambda: want <= reconciled(proc) or proc.proc.poll() is not None, timeout=60,
                   what="every object of a and b reconciled by the scoped controller")
        assert proc.proc.poll() is None, proc.output()
        assert {ns for _, ns, _ in reconciled(proc)} == {a, b}
        assert "forbidden" not in proc.output().lower(), "the controller asked for more than it may"
        for ns in (a, b):
            assert kubectl("get", "modelroute", "chat", "-n", ns, "-o",
                           "jsonpath={.status.conditions[?(@.type=='Ready')].status}").stdout == "True"
    finally:
        proc.stop()


def test_rendered_namespaces_are_joined_into_one_flag():
    out = render("switchyard-system", ("team-a", "team-b"), "gateway", "controller")
    assert out.count("--namespace=team-a,team-b") == 2
    assert "--admin-addr=0.0.0.0:9090" in out


def test_a_controller_with_an_instance_id_reconciles_only_what_carries_its_id(controller, crds, mocks):
    """Two installs in one cluster (a second Switchyard while upgrading, or the chart beside the
    suite's controller): a controller with --instance-id reconciles exactly the objects labelled
    with it, and the controller without an id (the session's) leaves those alone."""
    ns = f"e2e-instance-{uuid.uuid4().hex[:5]}"
    kubectl("create", "namespace", ns)
    instance = f"blue-{uuid.uuid4().hex[:5]}"
    mock = mocks("openai")
    mine = {"switchyard.dev/controller-instance-id": instance}
    labelled = [backend("openai", mock, "gpt-4o"), route("mine", [("openai", 100)])]
    for obj in (doc for group in labelled for doc in group):
        obj["metadata"].setdefault("labels", {}).update(mine)
    apply(ns, *labelled)
    apply(ns, backend("other", mock, "gpt-4o"), route("theirs", [("other", 100)]))
    # A second install lives in a release namespace of its own, where its Lease is.
    proc = start_controller(lease_namespace=ns, name="instance-controller", extra=["--instance-id", instance],
                            env={"RUST_LOG": "info,switchyard=debug", "SWITCHYARD_LOG_JSON": "true"})
    try:
        want = {("inferencebackend", ns, "openai"), ("modelroute", ns, "mine")}
        wait_until(lambda: want <= reconciled(proc) or proc.proc.poll() is not None, timeout=60,
                   what="the labelled objects reconciled by the controller with the id")
        assert proc.proc.poll() is None, proc.output()
        assert {(k, n) for k, s, n in reconciled(proc) if s == ns} == {("inferencebackend", "openai"),
                                                                       ("modelroute", "mine")}
        # Nothing outside its id anywhere in the cluster (the other tests' objects included).
        assert {(k, s, n) for k, s, n in reconciled(proc)} == want
        # No condition at all until its controller first writes status: None, not yet Ready.
        ready = lambda name: condition(kubectl_json("get", "modelroute", name, namespace=ns), "Ready") or {}
        wait_until(lambda: ready("mine").get("status") == "True", timeout=60, what="the labelled route Ready")
        wait_until(lambda: ready("theirs").get("status") == "True", timeout=60, what="the unlabelled route Ready")
    finally:
        proc.stop()
    # With the instance's controller gone, a change to its route is nobody's business: the
    # session's controller does not observe it, while it does observe the unlabelled one.
    observed = lambda name: kubectl_json("get", "modelroute", name, namespace=ns)["status"].get("observedGeneration")
    before = observed("mine")
    for name in ("mine", "theirs"):
        kubectl("patch", "modelroute", name, "--type=merge", "-p", '{"spec":{"rollout":{"maxHold":"17m"}}}',
                namespace=ns)
    generation = lambda name: kubectl_json("get", "modelroute", name, namespace=ns)["metadata"]["generation"]
    wait_until(lambda: observed("theirs") == generation("theirs"), timeout=30,
               what="the session's controller observing the unlabelled route")
    time.sleep(3)
    assert observed("mine") == before < generation("mine")
    kubectl("delete", "namespace", ns, "--wait=false", check=False)
