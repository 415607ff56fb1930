"""Who may call the gateway: Tenants and their keys, on the local cluster, through the
official SDKs. Keys come from Secrets labelled switchyard.dev/credential=tenant-key, rotate
without a restart, and reach only their tenant's routes."""

import json
import time

import anthropic
import openai
import pytest

from conftest import kubectl, kubectl_json, wait_until
from test_gateway_sdk import apply, backend, route, served


def tenant(name, keys, routes=None):
    spec = {"keys": [{"secretRef": {"name": s, "key": k}} for s, k in keys]}
    if routes:
        spec["routes"] = routes
    return [{"apiVersion": "switchyard.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": name}, "spec": spec}]


def key_secret(name, values, purpose="tenant-key"):
    labels = {"switchyard.dev/credential": purpose} if purpose else {}
    return [{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "labels": labels},
             "stringData": values}]


def ask(gateway, key, model="chat"):
    """The status the OpenAI SDK gets for one chat request with `key` (200 when it answers)."""
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0, timeout=10)
    try:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
        return 200
    except openai.APIStatusError as e:
        return e.status_code


def ready(namespace, name):
    t = kubectl_json("get", "tenant", name, namespace=namespace)
    c = next((c for c in t.get("status", {}).get("conditions", []) if c["type"] == "Ready"), None)
    return c, t.get("status", {}).get("keys")


def test_a_key_works_within_seconds_rotates_without_a_restart_and_stops_when_removed(
        controller, namespace, gateway, mocks):
    mock = mocks("openai")
    apply(namespace, backend("openai", mock, "gpt-4o"), route("chat", [("openai", 100)]))
    served(gateway, "chat")
    apply(namespace, key_secret("app-keys", {"old": "sk-rotate-old", "new": "sk-rotate-new"}),
          tenant("app", [("app-keys", "old")]))
    t0 = time.monotonic()
    wait_until(lambda: ask(gateway, "sk-rotate-old") == 200, timeout=10, interval=0.1, what="the first key accepted")
    first = time.monotonic() - t0
    assert ask(gateway, "sk-rotate-new") == 401

    # Rotation: the new key joins, callers move, the old key leaves. No restart.
    apply(namespace, tenant("app", [("app-keys", "old"), ("app-keys", "new")]))
    t0 = time.monotonic()
    wait_until(lambda: ask(gateway, "sk-rotate-new") == 200, timeout=10, interval=0.1, what="the new key accepted")
    added = time.monotonic() - t0
    assert ask(gateway, "sk-rotate-old") == 200, "both work during the rotation"
    apply(namespace, tenant("app", [("app-keys", "new")]))
    t0 = time.monotonic()
    wait_until(lambda: ask(gateway, "sk-rotate-old") == 401, timeout=10, interval=0.1, what="the old key refused")
    removed = time.monotonic() - t0
    assert ask(gateway, "sk-rotate-new") == 200
    print(f"key accepted {first:.2f} s after apply, new key {added:.2f} s, removed key refused {removed:.2f} s")
    assert gateway.proc.proc.poll() is None, "the same gateway process throughout"
    c, keys = wait_until(lambda: (r := ready(namespace, "app"))[0] and r[0]["status"] == "True" and r,
                         timeout=30, what="Tenant Ready")
    assert keys == 1 and c["message"] == "1 of 1 keys accepted"


def test_without_a_valid_key_both_sdks_get_their_own_authentication_error(controller, namespace, gateway, mocks):
    mock = mocks("openai")
    apply(namespace, backend("openai", mock, "gpt-4o"), route("chat", [("openai", 100)]))
    served(gateway, "chat")
    for key in ("sk-unknown", ""):
        with pytest.raises(openai.AuthenticationError) as e:
            openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key or "x", max_retries=0).models.list()
        assert "not valid for this gateway" in str(e.value) or "No API key" in str(e.value)
        with pytest.raises(anthropic.AuthenticationError) as e:
            anthropic.Anthropic(base_url=gateway.url, api_key=key or "x", max_retries=0).messages.create(
                model="chat", max_tokens=8, messages=[{"role": "user", "content": "hi"}])
        assert e.value.body["error"]["type"] == "authentication_error"
    # A provider's credential is never a caller's key, nor is a Secret that has not opted in.
    apply(namespace, key_secret("provider-key", {"apiKey": "sk-provider"}, purpose="provider"),
          key_secret("plain-key", {"key": "sk-plain"}, purpose=None),
          tenant("misconfigured", [("provider-key", "apiKey"), ("plain-key", "key")]))
    c, keys = wait_until(lambda: (r := ready(namespace, "misconfigured"))[0] and r, timeout=30, what="Tenant status")
    assert (c["status"], c["reason"], keys) == ("False", "SecretNotLabelled", 0), c
    assert "credential=provider, which may not be used here" in c["message"], c["message"]
    assert f"kubectl label secret plain-key -n {namespace} switchyard.dev/credential=tenant-key" in c["message"]
    assert ask(gateway, "sk-provider") == 401 and ask(gateway, "sk-plain") == 401
    assert mock.chat_requests() == 0, "nothing reached the provider"


def test_a_key_lists_and_reaches_only_its_tenants_routes(controller, namespace, gateway, mocks):
    mock = mocks("openai")
    apply(namespace, backend("openai", mock, "gpt-4o"), route("chat", [("openai", 100)]),
          route("internal", [("openai", 100)]),
          key_secret("bot-key", {"key": "sk-support-bot"}), tenant("support-bot", [("bot-key", "key")],
                                                                    routes={"names": ["chat"]}))
    served(gateway, "internal")
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-support-bot", max_retries=0, timeout=10)
    wait_until(lambda: ask(gateway, "sk-support-bot") == 200, timeout=10, what="the key accepted")
    assert [m.id for m in client.models.list()] == ["chat"]
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="internal", messages=[{"role": "user", "content": "hi"}])
    assert "does not exist or you do not have access to it" in str(e.value)
    assert "internal" not in json.dumps(e.value.body).replace("'internal'", "")
    # The namespace's e2e tenant (no route list) sees both.
    assert sorted(m["id"] for m in gateway.get("/v1/models").json()["data"]) == ["chat", "internal"]
    # Requests are counted per tenant.
    wait_until(lambda: gateway.metric("switchyard_requests_total", tenant="support-bot", outcome="success") >= 1,
               timeout=5, what="the tenant's requests counted")


def test_the_admin_endpoints_are_not_on_the_api_address(gateway):
    for path in ("/metrics", "/healthz", "/readyz"):
        r = gateway.get(path)
        assert r.status_code == 404, (path, r.status_code, r.text[:200])
        assert "is not an endpoint of this gateway" in r.json()["error"]["message"]
    assert kubectl("get", "crd", "tenants.switchyard.dev").returncode == 0


PROVIDER_KEY = "sk-hygiene-provider-0123456789-ZQXW"
TENANT_KEY = "sk-hygiene-tenant-9876543210-VBNM"


def test_known_keys_never_appear_in_logs_events_status_metrics_or_error_bodies(controller, crds, rbac, namespace,
                                                                               mocks):
    """A provider key and a tenant key go through successes, a provider's 401 (which echoes
    the key it got, as OpenAI's does), failover and unknown tenant keys; then every log line
    (gateway at debug), Event, status, metric and answer body is searched for them."""
    from conftest import start_gateway
    good = mocks("openai", key=PROVIDER_KEY)
    refusing = mocks("openai", key="sk-the-provider-expects-another")
    apply(namespace, backend("good", good, "gpt-4o", key=PROVIDER_KEY),
          backend("refusing", refusing, "gpt-4o", key=PROVIDER_KEY),
          route("chat", [("refusing", 100)], fallback=["good"]),
          route("only-refusing", [("refusing", 100)]),
          key_secret("hygiene", {"key": TENANT_KEY}), tenant("hygiene", [("hygiene", "key")]))
    gw = start_gateway(rbac["gateway"], namespace, env={"RUST_LOG": "debug"})
    try:
        served(gw, "only-refusing")
        bodies = []
        wait_until(lambda: ask(gw, TENANT_KEY) == 200, timeout=10, what="the tenant key accepted")
        client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=TENANT_KEY, max_retries=0, timeout=10)
        for _ in range(5):
            r = client.chat.completions.with_raw_response.create(
                model="chat", messages=[{"role": "user", "content": "fails over"}])
            bodies.append(r.http_response.text)
        for _ in range(3):
            with pytest.raises(openai.APIStatusError) as e:
                client.chat.completions.create(model="only-refusing", messages=[{"role": "user", "content": "401"}])
            bodies.append(e.value.response.text)
            assert "[redacted]" in e.value.response.text, e.value.response.text
        for wrong in (TENANT_KEY[:-1], PROVIDER_KEY):
            r = gw.post("/v1/chat/completions", headers={"Authorization": f"Bearer {wrong}"},
                        json={"model": "chat", "messages": [{"role": "user", "content": "x"}]})
            assert r.status_code == 401
            bodies.append(r.text)
        with anthropic.Anthropic(base_url=gw.url, api_key=TENANT_KEY, max_retries=0) as a:
            with pytest.raises(anthropic.APIStatusError) as e:
                a.messages.create(model="only-refusing", max_tokens=8, messages=[{"role": "user", "content": "x"}])
            bodies.append(e.value.response.text)
        assert refusing.stats()["by_path"].get("/v1/chat/completions", 0) >= 9, "the 401s happened"
        metrics = requests_text(f"{gw.admin_url}/metrics")
    finally:
        gw.proc.stop()
    places = {
        "gateway log (debug)": gw.proc.output(),
        "controller log": controller.output(),
        "events, status": kubectl("get", "events,ib,mr,tenants", "-o", "yaml", namespace=namespace).stdout,
        "metrics": metrics,
        "answers": "\n".join(bodies),
    }
    for key in (PROVIDER_KEY, TENANT_KEY):
        # The key, and the ends a provider echoes.
        for part in (key, key[:12], key[-8:]):
            leaked = [where for where, text in places.items() if part in text]
            assert not leaked, f"{part!r} found in {leaked}"


def requests_text(url):
    import requests
    return requests.get(url, timeout=5).text
