"""`switchyard controller` against the real API server: it reports backend readiness from
Secrets without ever exposing them, adopts new routes, names missing backends, and serves
its operational endpoints."""

import textwrap
import time

import pytest
import requests

from conftest import condition, kubectl, kubectl_json, wait_until

BACKEND = textwrap.dedent("""
    apiVersion: switchyard.dev/v1alpha1
    kind: InferenceBackend
    metadata: {name: anthropic}
    spec:
      external:
        dialect: anthropic
        baseUrl: https://api.anthropic.com
        model: claude-sonnet-4-5
        credentials: {secretRef: {name: anthropic-key, key: apiKey}}
    """)


def ready_condition(namespace, kind, name):
    def get():
        return condition(kubectl_json("get", kind, name, namespace=namespace), "Ready")
    return get


def test_external_backend_turns_ready_when_its_secret_appears(controller, namespace):
    kubectl("apply", "-f", "-", input=BACKEND, namespace=namespace)
    ready = ready_condition(namespace, "ib", "anthropic")
    c = wait_until(ready, timeout=30, what="Ready condition")
    assert (c["status"], c["reason"]) == ("False", "SecretNotFound")
    assert '"anthropic-key"' in c["message"]

    # A Secret that has not opted in is never used, and the condition says which label to add.
    # The controller watches labelled Secrets only, so an unlabelled one is noticed by the
    # next reconcile (here: a second backend naming it), not by its creation.
    kubectl("create", "secret", "generic", "anthropic-key", "--from-literal=apiKey=sk-ant-e2e", namespace=namespace)
    kubectl("apply", "-f", "-", input=BACKEND.replace("name: anthropic}", "name: anthropic-2}"), namespace=namespace)
    c = wait_until(lambda: (r := ready_condition(namespace, "ib", "anthropic-2")()) and r, timeout=30,
                   what="the second backend's Ready condition")
    assert (c["status"], c["reason"]) == ("False", "SecretNotLabelled")
    assert (f"kubectl label secret anthropic-key -n {namespace} switchyard.dev/credential=provider"
            in c["message"]), c["message"]
    # Labelling it is seen at once, by both.
    kubectl("label", "secret", "anthropic-key", "switchyard.dev/credential=provider", namespace=namespace)
    c = wait_until(lambda: (r := ready()) and r["status"] == "True" and r, timeout=10,
                   what="Ready=True after the Secret was labelled")
    wait_until(lambda: ready_condition(namespace, "ib", "anthropic-2")()["status"] == "True", timeout=10,
               what="the second backend Ready")
    assert c["reason"] == "Ready"
    ib = kubectl_json("get", "ib", "anthropic", namespace=namespace)
    assert ib["status"]["url"] == "https://api.anthropic.com"
    assert ib["status"]["observedGeneration"] == ib["metadata"]["generation"]


def test_route_names_a_missing_backend_then_resolves_when_it_is_created(controller, namespace):
    kubectl("apply", "-f", "-", namespace=namespace, input=textwrap.dedent("""
        apiVersion: switchyard.dev/v1alpha1
        kind: ModelRoute
        metadata: {name: chat}
        spec:
          backends: [{name: anthropic, weight: 100}]
        """))
    ready = ready_condition(namespace, "mr", "chat")
    c = wait_until(ready, timeout=30, what="route Ready condition")
    assert (c["status"], c["reason"]) == ("False", "BackendNotFound")
    assert '"anthropic"' in c["message"]
    assert not kubectl_json("get", "mr", "chat", namespace=namespace)["status"].get("weights")

    # Creating the backend re-triggers the route through the backend watch.
    kubectl("apply", "-f", "-", input=BACKEND, namespace=namespace)
    wait_until(lambda: (r := ready()) and r["status"] == "True", timeout=30, what="route Ready")
    status = kubectl_json("get", "mr", "chat", namespace=namespace)["status"]
    # status.weights is in thousandths in every phase; stable keeps the spec's own weights.
    assert status["weights"] == [{"name": "anthropic", "weight": 1000}]
    assert status["stable"] == [{"name": "anthropic", "weight": 100}]
    assert status["model"] == "chat"


def test_operational_endpoints(controller):
    assert requests.get(f"{controller.url}/healthz", timeout=2).text == "ok"
    assert requests.get(f"{controller.url}/readyz", timeout=2).status_code == 200
    metrics = requests.get(f"{controller.url}/metrics", timeout=2).text
    assert 'switchyard_controller_reconciles_total{kind="modelroute"}' in metrics
    assert "switchyard_controller_reconcile_duration_seconds_bucket" in metrics


def test_the_charts_rbac_is_least_privilege(rbac):
    """The session's controller and gateway run under these accounts, so every other test
    proves the grants suffice; this one proves they stop there."""
    controller = "system:serviceaccount:switchyard-system:switchyard-controller"
    gateway = "system:serviceaccount:switchyard-system:switchyard-gateway"

    def can(who, *args):
        return kubectl("auth", "can-i", *args, f"--as={who}", check=False).stdout.strip() == "yes"

    assert can(controller, "patch", "inferencebackends.switchyard.dev", "--subresource=status", "-A")
    assert can(controller, "patch", "modelroutes.switchyard.dev", "--subresource=status", "-A")
    assert can(controller, "create", "deployments.apps", "-n", "any")
    # Never spec: GitOps owns it.
    assert not can(controller, "patch", "modelroutes.switchyard.dev", "-A")
    assert not can(controller, "update", "inferencebackends.switchyard.dev", "-A")
    # Patch, for the in-use finalizer only; never routes.
    assert can(controller, "patch", "inferencebackends.switchyard.dev", "-A")
    assert not can(controller, "delete", "inferencebackends.switchyard.dev", "-A")
    assert not can(controller, "delete", "secrets", "-A")
    assert not can(controller, "create", "secrets", "-A")
    assert not can(controller, "list", "nodes")
    assert not can(controller, "create", "pods", "-n", "any")
    assert not can(controller, "update", "leases.coordination.k8s.io", "-n", "kube-system")
    assert can(controller, "update", "leases.coordination.k8s.io/switchyard-controller", "-n", "switchyard-system")
    assert not can(controller, "update", "leases.coordination.k8s.io/other", "-n", "switchyard-system")

    assert can(gateway, "watch", "modelroutes.switchyard.dev", "-A")
    assert can(gateway, "list", "endpointslices.discovery.k8s.io", "-A")
    for verb in ("create", "patch", "update", "delete"):
        assert not can(gateway, verb, "modelroutes.switchyard.dev", "-A")
        assert not can(gateway, verb, "secrets", "-A")
    assert not can(gateway, "patch", "modelroutes.switchyard.dev", "--subresource=status", "-A")


# Every API permission of each service account (`kubectl auth can-i --list`), resource →
# verbs; in any namespace, and what the release namespace adds. Any change to the chart's RBAC
# must show here. Every authenticated user may review its own access (the self* rows).
SELF_REVIEW = {
    "selfsubjectaccessreviews.authorization.k8s.io": {"create"},
    "selfsubjectrulesreviews.authorization.k8s.io": {"create"},
    "selfsubjectreviews.authentication.k8s.io": {"create"},
}
EXPECTED_GRANTS = {
    "controller": {
        **SELF_REVIEW,
        "inferencebackends.switchyard.dev": {"get", "list", "watch", "patch"},
        "modelroutes.switchyard.dev": {"get", "list", "watch"},
        "tenants.switchyard.dev": {"get", "list", "watch"},
        "inferencebackends.switchyard.dev/status": {"patch"},
        "modelroutes.switchyard.dev/status": {"patch"},
        "tenants.switchyard.dev/status": {"patch"},
        "deployments.apps": {"get", "list", "watch", "create", "patch"},
        "services": {"get", "create", "patch"},
        "poddisruptionbudgets.policy": {"get", "create", "patch", "delete"},
        "pods": {"get", "list", "watch"},
        "secrets": {"list", "watch"},
        "events.events.k8s.io": {"create", "patch"},
        "configmaps": {"get"},
    },
    "gateway": {
        **SELF_REVIEW,
        "inferencebackends.switchyard.dev": {"list", "watch"},
        "modelroutes.switchyard.dev": {"list", "watch"},
        "tenants.switchyard.dev": {"list", "watch"},
        "secrets": {"list", "watch"},
        "endpointslices.discovery.k8s.io": {"list", "watch"},
        "tokenreviews.authentication.k8s.io": {"create"},
    },
}
RELEASE_NAMESPACE_GRANTS = {
    "controller": {"leases.coordination.k8s.io": {"create"},
                   "leases.coordination.k8s.io[switchyard-controller]": {"get", "update"},
                   "serviceaccounts/token[switchyard-controller]": {"create"}},
    "gateway": {},
}


def can_i_list(account, namespace, who=None):
    """`kubectl auth can-i --list` as a service account: resource[names] → verbs (URL rows left out)."""
    who = who or f"system:serviceaccount:switchyard-system:switchyard-{account}"
    out = kubectl("auth", "can-i", "--list", "-n", namespace, f"--as={who}").stdout
    grants = {}
    for line in out.splitlines()[1:]:
        cols = line.split()
        resource, urls, names = cols[0], cols[1], cols[2]
        verbs = set(" ".join(cols[3:]).strip("[]").split())
        if urls != "[]" or not verbs:
            continue
        key = resource if names == "[]" else f"{resource}[{names.strip('[]')}]"
        grants.setdefault(key, set()).update(verbs)
    return grants


def test_each_service_account_has_exactly_the_expected_permissions(rbac):
    for account in ("controller", "gateway"):
        assert can_i_list(account, "any-team") == EXPECTED_GRANTS[account], account
        assert can_i_list(account, "switchyard-system") == {**EXPECTED_GRANTS[account],
                                                            **RELEASE_NAMESPACE_GRANTS[account]}, account


def apiserver_requests(resource, verb, scope="resource"):
    """How many `verb` requests for `resource` the API server has served (all clients)."""
    total = 0.0
    for line in kubectl("get", "--raw", "/metrics").stdout.splitlines():
        if (line.startswith("apiserver_request_total{") and f'resource="{resource}"' in line
                and f'verb="{verb}"' in line and f'scope="{scope}"' in line and 'subresource=""' in line):
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.mark.serial  # counts the API server's GETs of every client: alone, or others' GETs count
def test_route_reconciles_read_backends_from_the_watch_cache(controller, namespace):
    kubectl("apply", "-f", "-", input=BACKEND, namespace=namespace)
    kubectl("apply", "-f", "-", namespace=namespace, input=textwrap.dedent("""
        apiVersion: switchyard.dev/v1alpha1
        kind: ModelRoute
        metadata: {name: chat}
        spec:
          backends: [{name: anthropic, weight: 100}]
          fallback: [{name: anthropic}]
        """))
    wait_until(lambda: (r := ready_condition(namespace, "mr", "chat")()) and r["status"] == "True",
               timeout=30, what="route Ready")
    series = 'switchyard_controller_reconciles_total{kind="modelroute"}'

    def reconciles():
        for line in requests.get(f"{controller.url}/metrics", timeout=2).text.splitlines():
            if line.startswith(series + " "):
                return float(line.split()[-1])
        return 0.0

    gets, before = apiserver_requests("inferencebackends", "GET"), reconciles()
    # Every change to the route triggers a reconcile that resolves its backends.
    for i in range(5):
        kubectl("annotate", "mr", "chat", f"e2e.switchyard.dev/poke={i}", "--overwrite", namespace=namespace)
    wait_until(lambda: reconciles() >= before + 5, timeout=30, what="five route reconciles")
    assert apiserver_requests("inferencebackends", "GET") - gets == 0


def test_a_model_name_conflict_is_reported_on_both_routes_as_the_gateway_resolves_it(
        controller, namespace, gateway, mocks):
    from test_gateway_sdk import apply, backend, route
    from test_backends import events
    first, second = mocks("openai"), mocks("openai")
    apply(namespace, backend("first", first, "gpt-4o"), backend("second", second, "gpt-4o"),
          route("chat", [("first", 100)]))
    wait_until(lambda: (r := ready_condition(namespace, "mr", "chat")()) and r["status"] == "True",
               timeout=30, what="the first route Ready")
    time.sleep(1.1)  # creation timestamps have whole seconds: the second route is younger
    apply(namespace, route("chat-too", [("second", 100)], model="chat"))

    def cond(name, type_):
        return condition(kubectl_json("get", "mr", name, namespace=namespace), type_)

    loser = wait_until(lambda: (c := cond("chat-too", "Stalled")) and c["status"] == "True" and c,
                       timeout=30, what="the younger route Stalled")
    assert loser["reason"] == "ModelConflict" and "ModelRoute chat;" in loser["message"], loser
    assert cond("chat-too", "Ready")["status"] == "False"
    winner = wait_until(lambda: cond("chat", "ModelConflict"), timeout=30, what="the older route's condition")
    assert winner["status"] == "True" and "ModelRoute chat-too" in winner["message"], winner
    assert cond("chat", "Ready")["status"] == "True"
    assert wait_until(lambda: events(namespace, "chat", "ModelConflict"), timeout=10, what="event on chat")
    assert wait_until(lambda: events(namespace, "chat-too", "ModelConflict"), timeout=10, what="event on chat-too")

    # The gateway serves what status says: the older route.
    def answered_by():
        r = gateway.post("/v1/chat/completions", timeout=10,
                          json={"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})
        return r.status_code == 200 and r.headers.get("x-switchyard-backend")
    assert {wait_until(answered_by, timeout=30, what="an answer") for _ in range(5)} == {"first"}

    # The older route goes: the younger one serves, and nobody reports a conflict.
    kubectl("delete", "mr", "chat", namespace=namespace)
    wait_until(lambda: (r := cond("chat-too", "Ready")) and r["status"] == "True", timeout=30,
               what="the younger route Ready")
    assert cond("chat-too", "Stalled") is None
    wait_until(lambda: answered_by() == "second", timeout=30, what="the gateway to follow")
