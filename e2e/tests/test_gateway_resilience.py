"""The gateway under real-world failures: a provider that answers 2xx slowly or badly is never
billed twice, a stream fails over until its first content token, a misconfigured backend is a
backend fault, a failing backend is ejected and recorded as unavailable (what the controller's
analysis counts against a canary), and --request-timeout bounds streams."""

import openai
import pytest
import requests

from conftest import CLUSTER, E2E_DIR, start_gateway, wait_until
from test_gateway_sdk import apply, backend, oai, route, served

ASK = {"model": "chat", "messages": [{"role": "user", "content": "hello"}]}


def gateway_with(rbac, namespace, *flags):
    g = start_gateway(rbac["gateway"], namespace, "--request-timeout", "3s", *flags)
    yield g
    (E2E_DIR / "prometheus" / "targets" / f"{g.job}.json").unlink(missing_ok=True)
    assert g.proc.stop() == 0, f"gateway did not shut down cleanly:\n{g.proc.output()}"


@pytest.fixture
def gw(controller, crds, rbac, namespace):
    yield from gateway_with(rbac, namespace)


@pytest.fixture
def ejecting_gw(controller, crds, rbac, namespace):
    """Outlier ejection shortened so that a test sees it start and end."""
    yield from gateway_with(rbac, namespace, "--outlier-consecutive-failures", "2",
                            "--outlier-base-ejection", "8s")


def post(gw, **extra):
    return gw.post("/v1/chat/completions", json={**ASK, **extra}, timeout=15)


def test_a_slow_2xx_is_sent_upstream_exactly_once(gw, namespace, mocks):
    slow, spare = mocks("openai"), mocks("openai")
    apply(namespace, backend("slow", slow, "gpt-4o", timeout="1s"), backend("spare", spare, "gpt-4o"),
          route("chat", [("slow", 100)], fallback=["spare"]))
    served(gw, "chat")
    slow.faults(body_delay_ms=2000)  # headers at once, the body after the 1s timeout
    r = post(gw)
    assert r.status_code == 504, r.text
    assert slow.chat_requests() == 1, "a 2xx answer is billed; it is never sent again"
    assert spare.chat_requests() == 0
    # A malformed 2xx is the same: the provider answered, the caller gets 502, no failover.
    slow.faults(malformed_rate=1.0)
    r = post(gw)
    assert r.status_code == 502 and "malformed" in r.text, r.text
    assert (slow.chat_requests(), spare.chat_requests()) == (2, 0)
    # Before any answer the request is free to move: a slow status line still fails over.
    slow.faults(latency_ms=2000)
    r = post(gw)
    assert r.status_code == 200 and r.headers["x-switchyard-backend"] == "spare"


def test_a_stream_fails_over_until_its_first_content_token(gw, namespace, mocks):
    claude, spare = mocks("anthropic"), mocks("openai")
    apply(namespace, backend("claude", claude, "claude-sonnet-4-5"), backend("spare", spare, "gpt-4o"),
          route("chat", [("claude", 100)], fallback=["spare"]))
    served(gw, "chat")
    # message_start, content_block_start, ping, then overloaded_error: nothing generated yet.
    claude.faults(stream_error_after=0)
    raw = oai(gw).chat.completions.with_raw_response.create(
        model="chat", messages=[{"role": "user", "content": "fresh words"}], stream=True)
    assert raw.headers["x-switchyard-backend"] == "spare"
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert text == "echo: fresh words"
    assert (claude.chat_requests(), spare.chat_requests()) == (1, 1)
    # After a token the answer is the caller's: the error ends the stream, nothing is resent.
    claude.faults(stream_error_after=1)
    with pytest.raises(openai.APIError, match="Overloaded"):
        for _ in oai(gw).chat.completions.create(
                model="chat", messages=[{"role": "user", "content": "one two three"}], stream=True):
            pass
    assert (claude.chat_requests(), spare.chat_requests()) == (2, 1)


def test_upstream_404_is_a_backend_fault_not_model_not_found(gw, namespace, mocks):
    mock, spare = mocks("openai"), mocks("openai")
    wrong = backend("wrong", mock, "gpt-4o")
    wrong[0]["spec"]["external"]["baseUrl"] = f"{mock.url}/typo/v1"
    apply(namespace, wrong, backend("spare", spare, "gpt-4o"), route("chat", [("wrong", 100)], fallback=["spare"]))
    served(gw, "chat")
    r = post(gw)
    assert r.status_code == 200 and r.headers["x-switchyard-backend"] == "spare", r.text
    apply(namespace, route("chat", [("wrong", 100)]))
    wait_until(lambda: post(gw).status_code == 502, timeout=10, what="fallback tier removed")
    r = post(gw)
    assert r.json()["error"]["code"] != "model_not_found"
    assert "wrong" in r.json()["error"]["message"] and "base URL" in r.json()["error"]["message"]


def test_a_failing_backend_is_ejected_and_recorded_unavailable(ejecting_gw, namespace, mocks):
    gw = ejecting_gw
    stable, canary = mocks("openai"), mocks("openai")
    apply(namespace, backend("stable", stable, "gpt-4o"), backend("canary", canary, "gpt-4o"),
          route("chat", [("stable", 50), ("canary", 50)]))
    served(gw, "chat")
    canary.faults(error_rate=1.0, error_status=503)
    for _ in range(20):
        r = post(gw)
        assert r.status_code == 200 and r.headers["x-switchyard-backend"] == "stable", r.text
    assert canary.chat_requests() == 2, "ejected after two consecutive 5xx (--outlier-consecutive-failures 2)"
    sel = {"namespace": namespace, "route": "chat", "backend": "canary", "provider": "openai"}
    assert gw.metric("switchyard_requests_total", outcome="failover", code="503", **sel) == 2
    # Its landings while ejected are failures of the canary in the analysis' eyes.
    assert gw.metric("switchyard_requests_total", outcome="unavailable", code="ejected", **sel) == 8
    assert gw.metric("switchyard_outlier_ejections_total", namespace=namespace, backend="canary",
                     reason="consecutive_5xx") == 1
    assert gw.metric("switchyard_endpoints_ejected", namespace=namespace, backend="canary") == 1
    prom = CLUSTER["PROMETHEUS_URL"]

    def in_prometheus():
        q = f'switchyard_endpoints_ejected{{namespace="{namespace}",backend="canary"}}'
        result = requests.get(f"{prom}/api/v1/query", params={"query": q}, timeout=5).json()["data"]["result"]
        return result and result[0]["value"][1] == "1"

    wait_until(in_prometheus, timeout=10, what="the gauge in Prometheus")
    # The ejection ends after --outlier-base-ejection; the healed canary serves again.
    canary.clear_faults()
    wait_until(lambda: gw.metric("switchyard_endpoints_ejected", namespace=namespace, backend="canary") == 0,
               timeout=15, what="ejection over")
    seen = {post(gw).headers["x-switchyard-backend"] for _ in range(4)}
    assert seen == {"stable", "canary"}


def test_the_request_timeout_bounds_a_stream(gw, namespace, mocks):
    mock = mocks("openai")
    apply(namespace, backend("slow", mock, "gpt-4o"), route("chat", [("slow", 100)]))
    served(gw, "chat")
    mock.faults(inter_token_ms=400)  # 64 words: ~25 s, far past --request-timeout 3s
    words = " ".join(f"w{i}" for i in range(64))
    received = []
    with pytest.raises(openai.APIError, match="request-timeout"):
        for c in oai(gw).chat.completions.create(
                model="chat", messages=[{"role": "user", "content": words}], stream=True):
            received += [c.choices[0].delta.content or ""] if c.choices else []
    assert "".join(received).startswith("echo: w0"), "tokens flowed until the deadline"
    assert " w63" not in "".join(received)
