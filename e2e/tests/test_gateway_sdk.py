"""The gateway as application developers meet it: the official OpenAI and Anthropic SDKs,
unchanged, against one endpoint that applies the route's weights, translates between
dialects, fails over, streams and measures. Providers are mock servers speaking the real wire
formats, with faults injected at runtime."""

import concurrent.futures
import json
import textwrap
import time

import anthropic
import openai
import pytest
import requests

from conftest import CLUSTER, kubectl, kubectl_json, start_gateway, wait_until

WEATHER_OPENAI = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
WEATHER_ANTHROPIC = {
    "name": "get_weather",
    "description": "Current weather of a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def backend(name, mock, model, key=None, timeout=None, pricing=None, max_concurrency=None):
    base = f"{mock.url}/v1" if mock.dialect == "openai" else mock.url
    spec = {"external": {"dialect": mock.dialect, "baseUrl": base, "model": model}}
    if key:
        spec["external"]["credentials"] = {"secretRef": {"name": f"{name}-key", "key": "apiKey"}}
        spec["external"]["allowInsecure"] = True  # the mock listens on loopback, plain http
    if timeout or max_concurrency:
        spec["limits"] = {k: v for k, v in {"timeout": timeout, "maxConcurrency": max_concurrency}.items() if v}
    if pricing:
        spec["pricing"] = pricing
    docs = [{"apiVersion": "switchyard.dev/v1alpha1", "kind": "InferenceBackend",
             "metadata": {"name": name}, "spec": spec}]
    if key:
        docs.append({"apiVersion": "v1", "kind": "Secret",
                     "metadata": {"name": f"{name}-key", "labels": {"switchyard.dev/credential": "provider"}},
                     "stringData": {"apiKey": key}})
    return docs


def route(name, backends, fallback=(), model=None, rollout=None):
    spec = {"backends": [{"name": b, "weight": w} for b, w in backends]}
    if rollout:
        spec["rollout"] = rollout
    if fallback:
        spec["fallback"] = [{"name": f} for f in fallback]
    if model:
        spec["model"] = model
    return [{"apiVersion": "switchyard.dev/v1alpha1", "kind": "ModelRoute", "metadata": {"name": name}, "spec": spec}]


def apply(namespace, *docs):
    kubectl("apply", "-f", "-", namespace=namespace, input="\n---\n".join(json.dumps(d) for group in docs for d in group))


def served(gateway, model, weights=None):
    """Waits until the gateway's cache has the route (and, if given, that split)."""
    def ok():
        models = [m["id"] for m in gateway.get("/v1/models", timeout=2).json()["data"]]
        return model in models
    wait_until(ok, timeout=30, what=f"model {model} served")


def oai(gateway):
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=gateway.key, max_retries=0, timeout=30)


def ant(gateway):
    return anthropic.Anthropic(base_url=gateway.url, api_key=gateway.key, max_retries=0, timeout=30)


def last_body(mock):
    return mock.stats()["recent"][-1]


@pytest.fixture
def openai_route(controller, namespace, gateway, mocks):
    mock = mocks("openai", key="sk-openai-e2e")
    apply(namespace, backend("openai", mock, "gpt-4o-mini", key="sk-openai-e2e",
                             pricing={"inputPerMillionTokens": "2.50", "outputPerMillionTokens": "10.00"}),
          route("chat", [("openai", 100)]))
    served(gateway, "chat")
    return mock


@pytest.fixture
def anthropic_route(controller, namespace, gateway, mocks):
    mock = mocks("anthropic", key="sk-ant-e2e")
    apply(namespace, backend("claude", mock, "claude-sonnet-4-5", key="sk-ant-e2e"),
          route("assistant", [("claude", 100)]))
    served(gateway, "assistant")
    return mock


def test_openai_sdk_chat_stream_tools_and_embeddings(openai_route, gateway):
    client = oai(gateway)
    raw = client.chat.completions.with_raw_response.create(
        model="chat", messages=[{"role": "system", "content": "Be brief."},
                                {"role": "user", "content": "hello there gateway"}])
    assert raw.headers["x-switchyard-backend"] == "openai"
    assert raw.headers["x-request-id"]
    r = raw.parse()
    assert "hello there gateway" in r.choices[0].message.content
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0
    sent = last_body(openai_route)
    assert sent["body"]["model"] == "gpt-4o-mini", "model rewritten to the backend's id"
    assert sent["key_matched"] is True, "credential injected from the Secret"
    assert sent["headers"]["x-request-id"] == raw.headers["x-request-id"], "request id propagated"
    own = client.chat.completions.with_raw_response.create(
        model="chat", messages=[{"role": "user", "content": "x"}], extra_headers={"x-request-id": "trace-42"})
    assert own.headers["x-request-id"] == "trace-42" == last_body(openai_route)["headers"]["x-request-id"]

    chunks = list(client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hello there gateway"}], stream=True))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == r.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.choices for c in chunks), "the usage chunk the gateway asked for is not forwarded unasked"

    t = client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "what is the weather in Paris?"}], tools=[WEATHER_OPENAI])
    call = t.choices[0].message.tool_calls[0]
    assert t.choices[0].finish_reason == "tool_calls"
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", {"city": "Paris"})
    follow = client.chat.completions.create(model="chat", tools=[WEATHER_OPENAI], messages=[
        {"role": "user", "content": "what is the weather in Paris?"},
        {"role": "assistant", "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"}])
    assert "sunny, 21 C" in follow.choices[0].message.content

    e = client.embeddings.create(model="chat", input=["alpha", "beta"])
    assert len(e.data) == 2 and len(e.data[0].embedding) == 8


def test_anthropic_sdk_against_an_anthropic_backend(anthropic_route, gateway):
    client = ant(gateway)
    m = client.messages.create(model="assistant", max_tokens=64, system="Be brief.",
                               messages=[{"role": "user", "content": "hello from the anthropic sdk"}])
    assert "hello from the anthropic sdk" in m.content[0].text
    assert m.stop_reason == "end_turn" and m.usage.input_tokens > 0
    sent = last_body(anthropic_route)
    assert sent["body"]["model"] == "claude-sonnet-4-5" and sent["key_matched"] is True

    with client.messages.stream(model="assistant", max_tokens=64,
                                messages=[{"role": "user", "content": "hello from the anthropic sdk"}]) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == m.content[0].text and final.stop_reason == "end_turn"

    t = client.messages.create(model="assistant", max_tokens=64, tools=[WEATHER_ANTHROPIC],
                               messages=[{"role": "user", "content": "weather in Paris?"}])
    use = next(b for b in t.content if b.type == "tool_use")
    assert (t.stop_reason, use.name, use.input) == ("tool_use", "get_weather", {"city": "Paris"})


def test_anthropic_sdk_served_by_an_openai_backend(openai_route, gateway):
    client = ant(gateway)
    m = client.messages.create(model="chat", max_tokens=64, system="Be brief.",
                               messages=[{"role": "user", "content": "translate me please"}])
    assert m.type == "message" and "translate me please" in m.content[0].text
    assert m.stop_reason == "end_turn" and m.usage.output_tokens > 0
    sent = last_body(openai_route)["body"]
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent["max_completion_tokens"] == 64 and "max_tokens" not in sent

    with client.messages.stream(model="chat", max_tokens=64,
                                messages=[{"role": "user", "content": "translate me please"}]) as s:
        text = "".join(s.text_stream)
    assert text == m.content[0].text

    t = client.messages.create(model="chat", max_tokens=64, tools=[WEATHER_ANTHROPIC],
                               messages=[{"role": "user", "content": "weather in Paris?"}])
    use = next(b for b in t.content if b.type == "tool_use")
    assert (t.stop_reason, use.name, use.input) == ("tool_use", "get_weather", {"city": "Paris"})
    follow = client.messages.create(model="chat", max_tokens=64, tools=[WEATHER_ANTHROPIC], messages=[
        {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "content": [b.model_dump() for b in t.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "rainy, 12 C"}]}])
    assert "rainy, 12 C" in follow.content[0].text


def test_openai_sdk_served_by_an_anthropic_backend(anthropic_route, gateway):
    client = oai(gateway)
    r = client.chat.completions.create(model="assistant", max_tokens=64, messages=[
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "cross the dialects"}])
    assert "cross the dialects" in r.choices[0].message.content
    assert r.choices[0].finish_reason == "stop" and r.usage.total_tokens > 0
    sent = last_body(anthropic_route)["body"]
    assert sent["system"] == "Be brief." and sent["messages"][0]["role"] == "user"

    chunks = list(client.chat.completions.create(
        model="assistant", messages=[{"role": "user", "content": "cross the dialects"}], stream=True,
        stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == r.choices[0].message.content
    assert chunks[-1].usage.completion_tokens > 0

    t = client.chat.completions.create(
        model="assistant", messages=[{"role": "user", "content": "weather in Paris?"}], tools=[WEATHER_OPENAI])
    call = t.choices[0].message.tool_calls[0]
    assert (t.choices[0].finish_reason, call.function.name) == ("tool_calls", "get_weather")
    assert json.loads(call.function.arguments) == {"city": "Paris"}


def test_errors_map_to_the_sdks_exception_types(openai_route, anthropic_route, gateway):
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        oai(gateway).chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(anthropic.NotFoundError, match="does not exist"):
        ant(gateway).messages.create(model="nope", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError, match="at least one message"):
        oai(gateway).chat.completions.create(model="chat", messages=[])

    openai_route.faults(rate_limit_rate=1.0, retry_after=1)
    with pytest.raises(openai.RateLimitError):
        oai(gateway).chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}])
    time.sleep(1.1)
    openai_route.faults(error_rate=1.0, error_status=503)
    with pytest.raises(openai.InternalServerError):
        oai(gateway).chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}])
    anthropic_route.faults(error_rate=1.0, error_status=503)
    with pytest.raises(anthropic.InternalServerError):
        ant(gateway).messages.create(model="assistant", max_tokens=5, messages=[{"role": "user", "content": "x"}])


@pytest.fixture
def two_tiers(controller, namespace, gateway, mocks):
    primary, fallback = mocks("openai"), mocks("anthropic")
    apply(namespace, backend("primary", primary, "gpt-4o", timeout="1s"),
          backend("fallback", fallback, "claude-haiku-4-5"),
          route("chat", [("primary", 100)], fallback=["fallback"]))
    served(gateway, "chat")
    return primary, fallback


# A malformed 2xx is not here: the provider answered, so it is the caller's 502 and never sent
# again (test_gateway_resilience.py).
@pytest.mark.parametrize("fault,reason", [
    ({"error_rate": 1.0, "error_status": 503}, "server_error"),
    ({"rate_limit_rate": 1.0, "retry_after": 30}, "rate_limited"),
    ({"latency_ms": 3000}, "timeout"),
    (None, "connect"),
])
def test_failover_to_the_next_tier(two_tiers, gateway, namespace, fault, reason):
    primary, fallback = two_tiers
    if fault is None:
        primary.stop()  # nothing listens on its port any more
    else:
        primary.faults(**fault)
    started = time.monotonic()
    raw = oai(gateway).chat.completions.with_raw_response.create(
        model="chat", messages=[{"role": "user", "content": "still answered"}])
    assert raw.headers["x-switchyard-backend"] == "fallback"
    assert "still answered" in raw.parse().choices[0].message.content
    assert time.monotonic() - started < 2.9, "a 1s backend timeout bounds the wait"
    assert fallback.chat_requests() == 1
    assert gateway.metric("switchyard_failovers_total", namespace=namespace, route="chat",
                          reason=reason, to="fallback", **{"from": "primary"}) == 1
    if reason == "rate_limited":
        # Retry-After is honoured: the primary gets no attempts while it lasts.
        oai(gateway).chat.completions.create(model="chat", messages=[{"role": "user", "content": "again"}])
        assert primary.chat_requests() == 1 and fallback.chat_requests() == 2


def test_a_client_error_is_not_retried(two_tiers, gateway):
    primary, fallback = two_tiers
    primary.faults(error_rate=1.0, error_status=400)
    with pytest.raises(openai.BadRequestError):
        oai(gateway).chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}])
    assert primary.chat_requests() == 1 and fallback.chat_requests() == 0


@pytest.mark.parametrize("fault", [{"cut_stream_after": 2}, {"malformed_rate": 1.0}])
def test_a_stream_failing_after_the_first_byte_ends_with_a_clean_sdk_error(openai_route, anthropic_route, gateway, fault):
    long = "one two three four five six seven eight nine ten"
    if "cut_stream_after" in fault:
        openai_route.faults(**fault)
        anthropic_route.faults(**fault)
        with pytest.raises(openai.APIError, match="before it was complete"):
            for _ in oai(gateway).chat.completions.create(
                    model="chat", messages=[{"role": "user", "content": long}], stream=True):
                pass
        with pytest.raises(anthropic.APIStatusError, match="before it was complete"):
            with ant(gateway).messages.stream(model="assistant", max_tokens=64,
                                              messages=[{"role": "user", "content": long}]) as s:
                for _ in s.text_stream:
                    pass
    else:
        # Malformed before the first byte: nothing was sent yet, so the client gets a clean
        # error response (there is no fallback tier here).
        openai_route.faults(**fault)
        with pytest.raises(openai.APIStatusError) as e:
            list(oai(gateway).chat.completions.create(
                model="chat", messages=[{"role": "user", "content": long}], stream=True))
        assert e.value.status_code == 502
    # The gateway keeps serving.
    openai_route.clear_faults()
    assert oai(gateway).chat.completions.create(model="chat", messages=[{"role": "user", "content": "ok"}])


def test_weights_95_5_hold_within_one_point_over_2000_requests(controller, namespace, gateway, mocks):
    big, small = mocks("openai"), mocks("openai")
    apply(namespace, backend("big", big, "m"), backend("small", small, "m"),
          route("split", [("big", 95), ("small", 5)]))
    served(gateway, "split")
    session = gateway.session()
    counts = {"big": 0, "small": 0}
    for _ in range(2000):
        r = session.post(f"{gateway.url}/v1/chat/completions", timeout=10,
                         json={"model": "split", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1})
        assert r.status_code == 200, r.text
        counts[r.headers["x-switchyard-backend"]] += 1
    share = counts["small"] / 2000
    assert 0.04 <= share <= 0.06, counts
    assert (big.chat_requests(), small.chat_requests()) == (counts["big"], counts["small"])


def test_weight_secret_and_endpoint_changes_apply_without_restart(controller, namespace, gateway, mocks):
    a, b = mocks("openai", key="key-a"), mocks("openai")
    apply(namespace, backend("a", a, "m", key="wrong-key"), backend("b", b, "m"), route("chat", [("a", 100)]))
    served(gateway, "chat")
    client = oai(gateway)
    ask = {"model": "chat", "messages": [{"role": "user", "content": "x"}]}

    # The Secret holds the wrong key: the provider rejects the gateway's credential.
    with pytest.raises(openai.APIStatusError, match="rejected|401"):
        client.chat.completions.create(**ask)
    kubectl("patch", "secret", "a-key", "--type=merge", "-p", json.dumps({"stringData": {"apiKey": "key-a"}}),
            namespace=namespace)
    wait_until(lambda: _ok(client, ask), timeout=5, interval=0.1, what="rotated key in use")

    # A new split: the controller moves status.weights to the first step (50/50) and the
    # gateway follows the watch.
    apply(namespace, route("chat", [("b", 100)], rollout={"steps": [50, 100], "stepDuration": "10m"}))

    def both():
        seen = {client.chat.completions.with_raw_response.create(**ask).headers["x-switchyard-backend"]
                for _ in range(4)}
        return seen == {"a", "b"}

    wait_until(both, timeout=5, interval=0.1, what="new weights applied")


def _ok(client, ask):
    try:
        client.chat.completions.create(**ask)
        return True
    except openai.APIStatusError:
        return False


def test_a_new_pod_of_a_self_hosted_backend_gets_traffic(controller, namespace, gateway):
    kubectl("apply", "-f", "-", namespace=namespace, input=textwrap.dedent("""
        apiVersion: switchyard.dev/v1alpha1
        kind: InferenceBackend
        metadata: {name: llama}
        spec:
          selfHosted: {runtime: vllm, model: meta-llama/Llama-3.1-8B-Instruct, replicas: 1, gpu: {count: 1}}
        ---
        apiVersion: switchyard.dev/v1alpha1
        kind: ModelRoute
        metadata: {name: llama}
        spec:
          backends: [{name: llama, weight: 1}]
        """))
    served(gateway, "llama")
    client = oai(gateway)
    ask = {"model": "llama", "messages": [{"role": "user", "content": "x"}]}
    wait_until(lambda: _ok(client, ask), timeout=120, what="first pod serving")
    kubectl("patch", "ib", "llama", "--type=merge", "-p", '{"spec":{"selfHosted":{"replicas":2}}}', namespace=namespace)

    def both_pods():
        ib = kubectl_json("get", "ib", "llama", namespace=namespace)
        return len(ib["status"].get("endpoints", [])) == 2 and ib["status"]["endpoints"]

    endpoints = wait_until(both_pods, timeout=120, what="second pod ready")

    def served_by():
        return [requests.get(f'http://{e["address"]}/_mock/stats', timeout=2).json()["by_path"]
                .get("/v1/chat/completions", 0) for e in endpoints]

    def both_serve():
        # The gateway learns of the pod from its watch, a moment after the API server says so.
        for _ in range(10):
            client.chat.completions.create(**ask)
        return all(n > 0 for n in served_by())

    wait_until(both_serve, timeout=10, interval=0, what="both pods serving")


def test_bad_requests_get_the_right_status_and_message(controller, crds, rbac, namespace, mocks):
    gw = start_gateway(rbac["gateway"], namespace, "--max-body-bytes", "65536")
    try:
        mock = mocks("openai")
        apply(namespace, backend("openai", mock, "m"), route("chat", [("openai", 100)]))
        served(gw, "chat")
        post = lambda path, data, **kw: gw.post(path, data=data, timeout=10, **kw)  # noqa: E731
        cases = [
            ("/v1/chat/completions", b"{not json", 400, "not valid JSON"),
            ("/v1/chat/completions", json.dumps({"model": 5, "messages": []}), 400, "'model' must be a string"),
            ("/v1/chat/completions", json.dumps({"messages": [{"role": "user", "content": "x"}]}), 400,
             "missing required parameter: 'model'"),
            ("/v1/chat/completions", json.dumps({"model": "chat", "messages": [{"role": "user"}], "stream": "yes"}),
             400, "'stream' must be a boolean"),
            ("/v1/chat/completions", json.dumps({"model": "chat", "messages": [
                {"role": "user", "content": "x" * 70000}]}), 413, "exceeds the gateway's limit of 65536 bytes"),
            ("/v1/embeddings", json.dumps({"model": "chat"}), 400, "missing required parameter: 'input'"),
        ]
        for path, data, status, message in cases:
            r = post(path, data)
            assert r.status_code == status, (path, data[:60], r.text)
            assert message in r.json()["error"]["message"]
        r = post("/v1/messages", json.dumps({"model": "chat", "messages": [{"role": "user", "content": "x"}]}))
        assert r.status_code == 400
        assert r.json()["type"] == "error" and r.json()["error"]["type"] == "invalid_request_error"
        assert "max_tokens" in r.json()["error"]["message"]
        r = post("/v1/chat/completions", json.dumps({"model": "chat", "messages": [{"role": "user", "content": "x"}]}))
        assert r.status_code == 200, "still serving after bad requests"
    finally:
        gw.proc.stop()


def test_the_series_the_controller_queries_exist_in_prometheus(openai_route, gateway, namespace):
    client = oai(gateway)
    for _ in range(3):
        client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "count me"}])
    list(client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}], stream=True))
    prom = CLUSTER["PROMETHEUS_URL"]

    def query(q):
        r = requests.get(f"{prom}/api/v1/query", params={"query": q}, timeout=5).json()
        return r["data"]["result"]

    sel = f'namespace="{namespace}",route="chat",backend="openai",provider="openai"'
    checks = {
        f'switchyard_requests_total{{{sel},outcome="success",code="200"}}': lambda v: v >= 4,
        f'switchyard_request_duration_seconds_count{{{sel},outcome="success"}}': lambda v: v >= 4,
        f'switchyard_time_to_first_token_seconds_count{{{sel}}}': lambda v: v >= 1,
        f'switchyard_tokens_total{{{sel},type="input"}}': lambda v: v > 0,
        f'switchyard_tokens_total{{{sel},type="output"}}': lambda v: v > 0,
        f'switchyard_cost_total{{{sel}}}': lambda v: v > 0,
    }
    for q, good in checks.items():
        result = wait_until(lambda q=q, good=good: (r := query(q)) and good(float(r[0]["value"][1])) and r,
                            timeout=30, interval=1, what=q)
        labels = result[0]["metric"]
        assert labels["namespace"] == namespace and labels["backend"] == "openai"
    # The error-rate query the controller's analysis runs has data.
    rate = query(f'sum(rate(switchyard_requests_total{{{sel},outcome=~"error|failover"}}[1m])) or vector(0)')
    assert float(rate[0]["value"][1]) == 0.0


def test_mirror_copies_a_share_of_traffic_without_slowing_clients(controller, namespace, gateway, mocks):
    live, shadow = mocks("openai"), mocks("anthropic")
    rollout = {"mirror": {"percent": 50, "duration": "1h"}, "analysis": {"interval": "10m"}}
    apply(namespace, backend("live", live, "gpt-4o"), backend("shadow", shadow, "claude-haiku-4-5"),
          route("chat", [("live", 100)], rollout=rollout))
    served(gateway, "chat")
    # Moving to the shadow backend starts the rollout's mirror phase: no live weight moves.
    apply(namespace, route("chat", [("shadow", 100)], rollout=rollout))
    client = oai(gateway)
    ask = {"model": "chat", "messages": [{"role": "user", "content": "mirror me"}]}
    wait_until(lambda: client.chat.completions.create(**ask) and shadow.chat_requests() > 0, timeout=10,
               what="mirroring to start")
    shadow.faults(latency_ms=1500)
    time.sleep(2)  # copies still in flight finish before counting
    shadow.reset()
    live.reset()
    slowest = 0.0
    for _ in range(100):
        started = time.monotonic()
        raw = client.chat.completions.with_raw_response.create(**ask)
        slowest = max(slowest, time.monotonic() - started)
        assert raw.headers["x-switchyard-backend"] == "live"
    assert slowest < 1.0, f"a client waited {slowest:.2f}s: the 1.5s mirror must not slow it"
    wait_until(lambda: shadow.chat_requests() == 50, timeout=15, what="50 of 100 requests mirrored")
    assert live.chat_requests() == 100
    # Shadow answers are recorded, and in the shadow's own dialect.
    assert shadow.stats()["recent"][-1]["body"]["model"] == "claude-haiku-4-5"
    sel = {"namespace": namespace, "route": "chat", "backend": "shadow", "provider": "anthropic"}
    wait_until(lambda: gateway.metric("switchyard_requests_total", outcome="shadow", code="200", **sel) >= 50,
               timeout=10, what="shadow series")
    assert gateway.metric("switchyard_tokens_total", type="output", **sel) > 0


def test_max_concurrency_overflows_to_the_next_tier(controller, namespace, gateway, mocks):
    slow, spare = mocks("openai"), mocks("openai")
    slow.faults(latency_ms=1500)
    apply(namespace, backend("slow", slow, "m", max_concurrency=2), backend("spare", spare, "m"),
          route("chat", [("slow", 100)], fallback=["spare"]))
    served(gateway, "chat")

    def one(_):
        r = gateway.post("/v1/chat/completions", timeout=10,
                          json={"model": "chat", "messages": [{"role": "user", "content": "x"}]})
        return r.status_code, r.headers.get("x-switchyard-backend")

    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        results = list(pool.map(one, range(5)))
    assert all(code == 200 for code, _ in results), results
    by = [b for _, b in results]
    assert by.count("slow") == 2 and by.count("spare") == 3, by
    assert gateway.metric("switchyard_failovers_total", namespace=namespace, route="chat", reason="saturated",
                          to="spare", **{"from": "slow"}) == 3


def test_a_gateway_shutting_down_finishes_the_requests_it_accepted(controller, crds, rbac, namespace, mocks):
    gw = start_gateway(rbac["gateway"], namespace)
    mock = mocks("openai")
    apply(namespace, backend("slow", mock, "m"), route("chat", [("slow", 100)]))
    served(gw, "chat")
    mock.faults(latency_ms=1500)
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        pending = [pool.submit(gw.post, "/v1/chat/completions", timeout=10,
                               json={"model": "chat", "messages": [{"role": "user", "content": "x"}]})
                   for _ in range(3)]
        wait_until(lambda: mock.chat_requests() == 3, timeout=5, what="requests accepted")
        gw.proc.proc.terminate()
        results = [f.result() for f in pending]
    assert [r.status_code for r in results] == [200, 200, 200]
    assert gw.proc.stop() == 0
