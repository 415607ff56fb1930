"""`switchyard controller` against the real API server: it reports backend readiness from
Secrets without ever exposing them, adopts new routes, names missing backends, and serves
its operational endpoints."""

import textwrap

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

    kubectl("create", "secret", "generic", "anthropic-key", "--from-literal=apiKey=sk-ant-e2e", namespace=namespace)
    c = wait_until(lambda: (r := ready()) and r["status"] == "True" and r, timeout=30,
                   what="Ready=True after the Secret was created")
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
    assert status["weights"] == [{"name": "anthropic", "weight": 100}]
    assert status["stable"] == status["weights"]
    assert status["model"] == "chat"


def test_operational_endpoints(controller):
    assert requests.get(f"{controller.url}/healthz", timeout=2).text == "ok"
    assert requests.get(f"{controller.url}/readyz", timeout=2).status_code == 200
    metrics = requests.get(f"{controller.url}/metrics", timeout=2).text
    assert 'switchyard_controller_reconciles_total{kind="modelroute"}' in metrics
    assert "switchyard_controller_reconcile_duration_seconds_bucket" in metrics
