"""`switchyard gateway` serves from its reflector cache: it becomes ready once the route cache
has synced and lists, in OpenAI's shape, the models whose routes have a split in effect."""

import textwrap

import requests

from conftest import kubectl, wait_until


def test_models_lists_routes_with_a_split_in_effect(controller, namespace, gateway):
    assert gateway.get("/v1/models", timeout=2).json() == {"object": "list", "data": []}
    kubectl("apply", "-f", "-", namespace=namespace, input=textwrap.dedent("""
        apiVersion: switchyard.dev/v1alpha1
        kind: InferenceBackend
        metadata: {name: local}
        spec:
          external: {dialect: openai, baseUrl: "http://127.0.0.1:9", model: tiny}
        ---
        apiVersion: switchyard.dev/v1alpha1
        kind: ModelRoute
        metadata: {name: assistant}
        spec:
          model: support-bot
          backends: [{name: local, weight: 1}]
        """))

    def models():
        return [m["id"] for m in gateway.get("/v1/models", timeout=2).json()["data"]]

    # The watch delivers the controller's status write; no restart, no API call per request.
    assert wait_until(models, timeout=30, what="route in /v1/models") == ["support-bot"]
    body = gateway.get("/v1/models", timeout=2).json()
    assert body["data"][0]["object"] == "model"
    assert body["data"][0]["owned_by"] == "switchyard"


def test_gateway_exports_metrics_and_health(gateway):
    assert requests.get(f"{gateway.admin_url}/healthz", timeout=2).text == "ok"
    r = requests.get(f"{gateway.admin_url}/metrics", timeout=2)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
