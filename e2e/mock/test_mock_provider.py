"""Tests of the mock LLM provider: wire formats (checked by hand and with the official SDKs when
they are installed), fault injection, counting, and the command line."""

import base64
import http.client
import itertools
import json
import math
import pathlib
import signal
import struct
import subprocess
import sys
import threading
import time

import pytest
import requests

from . import mock_provider

SCRIPT = pathlib.Path(mock_provider.__file__)
ANTHROPIC_HEADERS = {"anthropic-version": "2023-06-01"}
WEATHER_TOOL_OPENAI = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME_TOOL_OPENAI = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}
WEATHER_TOOL_ANTHROPIC = {
    "name": "get_weather",
    "description": "Current weather of a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
TIME_TOOL_ANTHROPIC = {"name": "get_time", "input_schema": {"type": "object"}}


class Provider:
    """A running mock server and an HTTP session to it."""

    def __init__(self, server):
        self.server = server
        host, port = server.server_address[:2]
        self.host, self.port = host, port
        self.url = f"http://{host}:{port}"
        self.http = requests.Session()

    def post(self, path, body=None, **kwargs):
        return self.http.post(self.url + path, json=body, timeout=10, **kwargs)

    def get(self, path, **kwargs):
        return self.http.get(self.url + path, timeout=10, **kwargs)

    def stats(self):
        return self.get("/_mock/stats").json()

    def faults(self, **config):
        response = self.post("/_mock/faults", config)
        assert response.status_code == 200, response.text
        return response.json()

    def chat(self, text="hello", headers=None, **extra):
        body = {"model": "gpt-test", "messages": [{"role": "user", "content": text}], **extra}
        return self.post("/v1/chat/completions", body, headers=headers)

    def message(self, text="hello", headers=None, **extra):
        body = {"model": "claude-test", "max_tokens": 100, "messages": [{"role": "user", "content": text}], **extra}
        return self.post("/v1/messages", body, headers={**ANTHROPIC_HEADERS, **(headers or {})})


@pytest.fixture
def start():
    """Starts mock servers in-process on free ports; stops them after the test."""
    started = []

    def _start(dialect, model=None, **kwargs):
        server, thread = mock_provider.serve(dialect, "127.0.0.1", 0, model, quiet=True, **kwargs)
        started.append((server, thread))
        return Provider(server)

    yield _start
    for server, thread in started:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def openai_mock(start):
    return start("openai")


@pytest.fixture
def anthropic_mock(start):
    return start("anthropic")


@pytest.fixture
def vllm_mock(start):
    return start("vllm", model="org/served-model")


def sse(text):
    """The (event, data) pairs of an SSE body."""
    events = []
    for block in text.strip().split("\n\n"):
        event, data = None, []
        for line in block.splitlines():
            if line.startswith("event: "):
                event = line[len("event: ") :]
            elif line.startswith("data: "):
                data.append(line[len("data: ") :])
        events.append((event, "\n".join(data)))
    return events


def openai_chunks(text):
    """The parsed chunks of an OpenAI stream and whether it ended with [DONE]."""
    datas = [data for _, data in sse(text)]
    done = datas[-1] == "[DONE]"
    return [json.loads(d) for d in (datas[:-1] if done else datas)], done


def timed_sse_lines(provider, path, body, headers=None):
    """Sends a streaming request; returns when the headers came and (time, line) of each non-empty line."""
    conn = http.client.HTTPConnection(provider.host, provider.port, timeout=10)
    sent = time.monotonic()
    conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json", **(headers or {})})
    response = conn.getresponse()
    headers_at = time.monotonic() - sent
    lines = []
    while line := response.readline():
        if line.strip():
            lines.append((time.monotonic() - sent, line.decode().strip()))
    conn.close()
    return headers_at, lines


def metric_values(text):
    """Prometheus text as {'name{labels}': value}."""
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def wait_until(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def in_background(fn):
    """Runs fn on a thread; returns the thread and a dict that receives its result or exception."""
    outcome = {}

    def run():
        try:
            outcome["result"] = fn()
        except Exception as err:  # handed to the test thread
            outcome["error"] = err

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


# --------------------------------------------------------------------------- OpenAI


def test_openai_chat_completion(openai_mock):
    response = openai_mock.post(
        "/v1/chat/completions",
        {
            "model": "gpt-test",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "hello mock world"},
            ],
        },
        headers={"x-request-id": "req-42"},
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "req-42"
    assert response.headers["content-type"] == "application/json"
    assert int(response.headers["content-length"]) == len(response.content)
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert isinstance(body["created"], int)
    assert body["model"] == "gpt-test"
    choice = body["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "echo: hello mock world"}
    assert choice["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}


def test_keep_alive_reuses_the_connection(openai_mock):
    conn = http.client.HTTPConnection(openai_mock.host, openai_mock.port, timeout=10)
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    for _ in range(2):
        conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        assert response.status == 200
        assert not response.will_close
        json.loads(response.read())
        sock = conn.sock
    conn.request("GET", "/v1/models")
    assert conn.getresponse().status == 200
    assert conn.sock is sock
    conn.close()



def test_a_closed_server_drops_its_keep_alive_connections(start):
    """A closed server is a deleted pod: its connections go with it. One process serves many
    simulated pods (pod_host.py), and the next pod may get the same IP and port; a client's
    pooled connection to the closed server must fail, not keep being answered by it."""
    server = start("vllm", "m")
    conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    assert response.status == 200 and not response.will_close
    response.read()
    server.server.shutdown()
    server.server.server_close()
    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
        conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
        conn.getresponse()
    conn.close()

def test_openai_stream(openai_mock):
    response = openai_mock.chat("stream me please", stream=True, stream_options={"include_usage": True})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    chunks, done = openai_chunks(response.text)
    assert done
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "gpt-test" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "echo: stream me please"
    finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert finish == ["stop"]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    assert all(c["usage"] is None for c in chunks[:-1])


def test_openai_stream_without_usage(openai_mock):
    chunks, done = openai_chunks(openai_mock.chat("hi", stream=True).text)
    assert done
    assert all("usage" not in c and c["choices"] for c in chunks)


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_openai_max_tokens_cuts_the_answer(openai_mock, field):
    body = openai_mock.chat("one two three", **{field: 2}).json()
    assert body["choices"][0]["message"]["content"] == "echo: one"
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 2


def test_openai_stop_sequence(openai_mock):
    body = openai_mock.chat("one two three four", stop=["three"]).json()
    assert body["choices"][0]["message"]["content"] == "echo: one two"
    assert body["choices"][0]["finish_reason"] == "stop"


def test_openai_tool_call(openai_mock):
    tools = [WEATHER_TOOL_OPENAI, TIME_TOOL_OPENAI]
    body = openai_mock.chat("What is the weather in Paris?", tools=tools).json()
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}

    assert openai_mock.chat("hello", tools=tools).json()["choices"][0]["finish_reason"] == "stop"
    none = openai_mock.chat("the weather?", tools=tools, tool_choice="none").json()
    assert none["choices"][0]["finish_reason"] == "stop"
    required = openai_mock.chat("hello", tools=tools, tool_choice="required").json()
    assert required["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
    named = openai_mock.chat("hello", tools=tools, tool_choice={"type": "function", "function": {"name": "get_time"}})
    assert named.json()["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_time"


def test_openai_streamed_tool_call(openai_mock):
    chunks, done = openai_chunks(openai_mock.chat("weather in Paris", tools=[WEATHER_TOOL_OPENAI], stream=True).text)
    assert done
    calls = [d["tool_calls"][0] for c in chunks if "tool_calls" in (d := c["choices"][0]["delta"])]
    assert calls[0]["id"].startswith("call_") and calls[0]["function"]["name"] == "get_weather"
    assert json.loads("".join(c["function"]["arguments"] for c in calls)) == {"city": "Paris"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_openai_tool_result_is_answered_with_text(openai_mock):
    messages = [
        {"role": "user", "content": "weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21 C"},
    ]
    body = openai_mock.post(
        "/v1/chat/completions", {"model": "m", "messages": messages, "tools": [WEATHER_TOOL_OPENAI]}
    ).json()
    assert body["choices"][0]["finish_reason"] == "stop"
    assert "sunny, 21 C" in body["choices"][0]["message"]["content"]


def test_openai_json_mode(openai_mock):
    body = openai_mock.chat("give me json", response_format={"type": "json_object"}).json()
    assert isinstance(json.loads(body["choices"][0]["message"]["content"]), dict)


# A schema of the shape strict structured outputs use: every property required, $defs referred to.
ANSWER_SCHEMA = {
    "type": "object",
    "properties": {
        "answer": {"type": "string", "minLength": 3},
        "score": {"type": "integer", "minimum": 1, "maximum": 5},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "ok": {"type": "boolean"},
        "kind": {"enum": ["short", "long"]},
        "source": {"anyOf": [{"$ref": "#/$defs/source"}, {"type": "null"}]},
        "note": {"type": "string"},
    },
    "required": ["answer", "score", "tags", "ok", "kind", "source"],
    "additionalProperties": False,
    "$defs": {"source": {"type": "object", "properties": {"url": {"type": "string"}}, "required": ["url"]}},
}
RESPONSE_FORMAT = {"type": "json_schema", "json_schema": {"name": "answer", "strict": True, "schema": ANSWER_SCHEMA}}


def fits_answer_schema(value):
    """The mock's answer fits ANSWER_SCHEMA: required properties only, with values of their types."""
    assert set(value) == set(ANSWER_SCHEMA["required"]), value
    assert isinstance(value["answer"], str) and len(value["answer"]) >= 3
    assert value["score"] == 1 and value["tags"] == [value["answer"]] and value["ok"] is True
    assert value["kind"] == "short" and value["source"] == {"url": value["answer"]}


def test_json_schema_answers_fit_the_schema(openai_mock, anthropic_mock):
    body = openai_mock.chat("give me json", response_format=RESPONSE_FORMAT).json()
    fits_answer_schema(json.loads(body["choices"][0]["message"]["content"]))
    chunks, _ = openai_chunks(openai_mock.chat("give me json", response_format=RESPONSE_FORMAT, stream=True).text)
    streamed = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    fits_answer_schema(json.loads(streamed))
    # Anthropic: output_config.format (GA), the beta output_format, or the instruction a gateway
    # writes into the system prompt when it translates OpenAI's JSON modes.
    fmt = {"type": "json_schema", "schema": ANSWER_SCHEMA}
    for extra in [
        {"output_config": {"format": fmt}},
        {"output_format": fmt},
        {"system": "Respond with a single valid JSON object and nothing else.\n"
                   f"The JSON object must conform to this JSON Schema:\n{json.dumps(ANSWER_SCHEMA)}"},
    ]:
        body = anthropic_mock.message("give me json", **extra).json()
        fits_answer_schema(json.loads(body["content"][0]["text"]))
    plain = anthropic_mock.message("give me json", system="Respond with a single valid JSON object.").json()
    assert json.loads(plain["content"][0]["text"]) == {"reply": "echo: give me json"}


def test_extra_output_words_lengthen_the_answer_and_its_usage(openai_mock, anthropic_mock):
    openai_mock.faults(extra_output_words=3)
    body = openai_mock.chat("one two").json()
    assert body["choices"][0]["message"]["content"] == "echo: one two more1 more2 more3"
    assert body["usage"]["completion_tokens"] == 6
    # max_tokens still cuts the padded answer.
    assert openai_mock.chat("one two", max_tokens=4).json()["usage"]["completion_tokens"] == 4
    anthropic_mock.faults(extra_output_words=2)
    body = anthropic_mock.message("hi").json()
    assert body["content"][0]["text"] == "echo: hi more1 more2"
    assert body["usage"]["output_tokens"] == 4
    openai_mock.faults()
    assert openai_mock.chat("one two").json()["usage"]["completion_tokens"] == 3


def test_answer_faults_spoil_json_answers_only(openai_mock, anthropic_mock):
    openai_mock.faults(invalid_json_rate=0.25, schema_mismatch_rate=0.5, deterministic=True)
    texts = [openai_mock.chat("hi", response_format=RESPONSE_FORMAT).json()["choices"][0]["message"]["content"]
             for _ in range(4)]
    # Counting, as the other rates: the 2nd answer misses a required property, the 4th is not
    # JSON (cut short), each a well-formed 200.
    fits_answer_schema(json.loads(texts[0]))
    fits_answer_schema(json.loads(texts[2]))
    assert set(ANSWER_SCHEMA["required"]) - set(json.loads(texts[1])) == {"answer"}, texts[1]
    with pytest.raises(ValueError):
        json.loads(texts[3])
    assert texts[3].startswith('{"answer": "echo: hi"')
    assert openai_mock.stats()["by_fault"] == {"invalid_json": 1, "schema_mismatch": 1}
    assert openai_mock.stats()["by_status"] == {"200": 4}
    # A request that asked for no JSON is never spoiled, nor counted.
    assert openai_mock.chat("plain").json()["choices"][0]["message"]["content"] == "echo: plain"
    assert openai_mock.stats()["by_fault"] == {"invalid_json": 1, "schema_mismatch": 1}
    # JSON mode (no schema) loses its only property under schema_mismatch; streams are spoiled too.
    openai_mock.faults(schema_mismatch_rate=1)
    assert json.loads(openai_mock.chat("x", response_format={"type": "json_object"}).json()["choices"][0]
                      ["message"]["content"]) == {}
    anthropic_mock.faults(invalid_json_rate=1)
    events = [(n, json.loads(d)) for n, d in sse(anthropic_mock.message(
        "x", stream=True, output_config={"format": {"type": "json_schema", "schema": ANSWER_SCHEMA}}).text)]
    text = "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta")
    assert events[-1][0] == "message_stop"
    with pytest.raises(ValueError):
        json.loads(text)


def test_openai_embeddings(openai_mock):
    request = {"model": "embed-test", "input": ["a b", "c"]}
    body = openai_mock.post("/v1/embeddings", request).json()
    assert body["object"] == "list" and body["model"] == "embed-test"
    assert body["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    first, second = body["data"]
    assert (first["object"], first["index"], second["index"]) == ("embedding", 0, 1)
    assert len(first["embedding"]) == len(second["embedding"]) == 8
    assert first["embedding"] != second["embedding"]
    assert math.isclose(sum(v * v for v in first["embedding"]), 1.0, rel_tol=1e-5)
    assert openai_mock.post("/v1/embeddings", request).json()["data"] == body["data"]

    encoded = openai_mock.post("/v1/embeddings", {**request, "encoding_format": "base64"}).json()
    decoded = struct.unpack("<8f", base64.b64decode(encoded["data"][0]["embedding"]))
    assert list(decoded) == first["embedding"]
    single = openai_mock.post("/v1/embeddings", {"model": "embed-test", "input": "a b"}).json()
    assert single["data"][0]["embedding"] == first["embedding"]


def test_openai_models(start):
    provider = start("openai", model="gpt-served")
    body = provider.get("/v1/models").json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == ["gpt-served"]
    assert body["data"][0]["object"] == "model"


def assert_openai_error(response, status, param=None):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    assert error["param"] == param
    return error


def test_openai_errors(openai_mock):
    url = openai_mock.url + "/v1/chat/completions"
    malformed = requests.post(url, data="{nope", headers={"Content-Type": "application/json"}, timeout=10)
    assert assert_openai_error(malformed, 400)["type"] == "invalid_request_error"
    missing_model = openai_mock.post("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}]})
    assert_openai_error(missing_model, 400, param="model")
    missing_messages = openai_mock.post("/v1/chat/completions", {"model": "m"})
    assert_openai_error(missing_messages, 400, param="messages")
    assert_openai_error(openai_mock.post("/v1/nothing-here", {}), 404)
    assert_openai_error(openai_mock.get("/v1/chat/completions"), 405)
    assert_openai_error(openai_mock.post("/v1/embeddings", {"model": "m"}), 400, param="input")


def test_openai_required_key_and_redaction(start):
    provider = start("openai", require_key="sk-right")
    missing = provider.chat("hi")
    assert assert_openai_error(missing, 401)["code"] == "invalid_api_key"
    assert_openai_error(provider.chat("hi", headers={"Authorization": "Bearer sk-wrong"}), 401)
    ok = provider.post(
        "/v1/chat/completions",
        {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": "Bearer sk-right"},
    )
    assert ok.status_code == 200
    stats = provider.stats()
    assert [r["key_matched"] for r in stats["recent"]] == [False, False, True]
    assert [r["headers"].get("authorization") for r in stats["recent"]] == [None, "***", "***"]
    assert "sk-right" not in json.dumps(stats) and "sk-wrong" not in json.dumps(stats)
    assert stats["by_status"] == {"401": 2, "200": 1}


def test_redaction_without_a_required_key(openai_mock):
    openai_mock.chat("hi", headers={"Authorization": "Bearer sk-anything", "X-Api-Key": "k"})
    (recent,) = openai_mock.stats()["recent"]
    assert recent["headers"]["authorization"] == "***" and recent["headers"]["x-api-key"] == "***"
    assert recent["key_matched"] is None


def test_openai_sdk(openai_mock):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=openai_mock.url + "/v1", api_key="sk-test", max_retries=0)
    messages = [{"role": "user", "content": "hello from the sdk"}]

    completion = client.chat.completions.create(model="gpt-sdk", messages=messages)
    assert completion.model == "gpt-sdk"
    assert completion.choices[0].message.content == "echo: hello from the sdk"
    assert completion.usage.total_tokens == 4 + 5

    stream = client.chat.completions.create(
        model="gpt-sdk", messages=messages, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: hello from the sdk"
    assert chunks[-1].usage.completion_tokens == 5

    tool = client.chat.completions.create(
        model="gpt-sdk", messages=[{"role": "user", "content": "weather in Paris?"}], tools=[WEATHER_TOOL_OPENAI]
    )
    call = tool.choices[0].message.tool_calls[0]
    assert tool.choices[0].finish_reason == "tool_calls"
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", {"city": "Paris"})

    embeddings = client.embeddings.create(model="embed-sdk", input=["a b", "c"])  # base64 on the wire
    plain = openai_mock.post("/v1/embeddings", {"model": "embed-sdk", "input": ["a b", "c"]}).json()
    assert [e.embedding for e in embeddings.data] == [e["embedding"] for e in plain["data"]]

    openai_mock.faults(rate_limit_rate=1, retry_after=3)
    with pytest.raises(openai.RateLimitError) as rate_limited:
        client.chat.completions.create(model="gpt-sdk", messages=messages)
    assert rate_limited.value.response.headers["retry-after"] == "3"
    openai_mock.faults(error_rate=1)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-sdk", messages=messages)
    with pytest.raises(openai.InternalServerError):
        list(client.chat.completions.create(model="gpt-sdk", messages=messages, stream=True))


# --------------------------------------------------------------------------- vLLM


def test_vllm_health_and_metrics(vllm_mock):
    health = vllm_mock.get("/health")
    assert (health.status_code, health.content) == (200, b"")
    metrics = vllm_mock.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    for name, kind in [
        ("vllm:num_requests_running", "gauge"),
        ("vllm:num_requests_waiting", "gauge"),
        ("vllm:time_to_first_token_seconds", "histogram"),
        ("vllm:e2e_request_latency_seconds", "histogram"),
        ("vllm:prompt_tokens_total", "counter"),
        ("vllm:generation_tokens_total", "counter"),
        ("vllm:request_success_total", "counter"),
    ]:
        assert f"# TYPE {name} {kind}" in metrics.text
    before = metric_values(metrics.text)
    label = 'model_name="org/served-model"'

    vllm_mock.post("/v1/chat/completions", {"messages": [{"role": "user", "content": "one two"}]})  # no model: served
    vllm_mock.chat("three four five", stream=True, max_tokens=2)
    after = metric_values(vllm_mock.get("/metrics").text)

    def moved(series):
        return after[series] - before[series]

    assert moved(f"vllm:prompt_tokens_total{{{label}}}") == 2 + 3
    assert moved(f"vllm:generation_tokens_total{{{label}}}") == 3 + 2
    assert moved(f'vllm:request_success_total{{{label},finished_reason="stop"}}') == 1
    assert moved(f'vllm:request_success_total{{{label},finished_reason="length"}}') == 1
    for histogram in ("vllm:time_to_first_token_seconds", "vllm:e2e_request_latency_seconds"):
        assert moved(f"{histogram}_count{{{label}}}") == 2
        assert moved(f'{histogram}_bucket{{{label},le="+Inf"}}') == 2
        assert after[f"{histogram}_sum{{{label}}}"] > before[f"{histogram}_sum{{{label}}}"]
    assert after[f"vllm:num_requests_running{{{label}}}"] == 0
    assert after[f"vllm:num_requests_waiting{{{label}}}"] == 0


def test_vllm_defaults_to_its_served_model(vllm_mock):
    body = vllm_mock.post("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}).json()
    assert body["model"] == "org/served-model"
    assert vllm_mock.get("/v1/models").json()["data"][0]["owned_by"] == "vllm"


def test_vllm_unguarded_endpoints_need_no_key_and_ignore_faults(start):
    provider = start("vllm", require_key="secret")
    provider.faults(error_rate=1, hang=True)
    assert provider.get("/health").status_code == 200
    assert provider.get("/metrics").status_code == 200
    assert provider.get("/_mock/stats").status_code == 200
    assert provider.get("/v1/models").status_code == 401  # the provider API does need the key


def test_vllm_waiting_gauge_follows_a_hung_request(vllm_mock):
    label = 'model_name="org/served-model"'

    def waiting():
        return metric_values(vllm_mock.get("/metrics").text)[f"vllm:num_requests_waiting{{{label}}}"]

    vllm_mock.faults(hang=True)
    thread, outcome = in_background(
        lambda: requests.post(
            vllm_mock.url + "/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]}, timeout=10
        )
    )
    wait_until(lambda: waiting() == 1)
    requests.delete(vllm_mock.url + "/_mock/faults", timeout=10)
    thread.join(5)
    assert outcome["result"].status_code == 200
    assert waiting() == 0


def test_hung_request_is_released_when_the_client_leaves(vllm_mock):
    label = 'model_name="org/served-model"'
    vllm_mock.faults(hang=True)
    with pytest.raises(requests.Timeout):
        requests.get(vllm_mock.url + "/v1/models", timeout=0.3)
    wait_until(lambda: metric_values(vllm_mock.get("/metrics").text)[f"vllm:num_requests_waiting{{{label}}}"] == 0)
    (hung,) = [r for r in vllm_mock.stats()["recent"] if r["path"] == "/v1/models"]
    assert (hung["fault"], hung["status"]) == ("hang", None)  # never answered


# --------------------------------------------------------------------------- Anthropic


def test_anthropic_message(anthropic_mock):
    response = anthropic_mock.post(
        "/v1/messages",
        {
            "model": "claude-test",
            "max_tokens": 100,
            "system": "be nice",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hello claude"}]}],
        },
        headers={**ANTHROPIC_HEADERS, "x-request-id": "abc"},
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "abc"
    body = response.json()
    assert body["id"].startswith("msg_")
    assert (body["type"], body["role"], body["model"]) == ("message", "assistant", "claude-test")
    assert body["content"] == [{"type": "text", "text": "echo: hello claude"}]
    assert (body["stop_reason"], body["stop_sequence"]) == ("end_turn", None)
    assert body["usage"] == {"input_tokens": 4, "output_tokens": 3}


def test_anthropic_stream(anthropic_mock):
    response = anthropic_mock.message("stream this", stream=True)
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [(name, json.loads(data)) for name, data in sse(response.text)]
    assert [name for name, _ in events] == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert all(data["type"] == name for name, data in events)
    start = events[0][1]["message"]
    assert (start["model"], start["content"], start["usage"]["input_tokens"]) == ("claude-test", [], 2)
    assert events[1][1]["content_block"] == {"type": "text", "text": ""}
    deltas = [data["delta"] for name, data in events if name == "content_block_delta"]
    assert all(d["type"] == "text_delta" for d in deltas)
    assert "".join(d["text"] for d in deltas) == "echo: stream this"
    message_delta = events[-2][1]
    assert message_delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert message_delta["usage"] == {"output_tokens": 3}


def test_anthropic_max_tokens_and_stop_sequences(anthropic_mock):
    short = anthropic_mock.message("one two", max_tokens=1).json()
    assert (short["content"][0]["text"], short["stop_reason"]) == ("echo:", "max_tokens")
    stopped = anthropic_mock.message("one two three", stop_sequences=["two"]).json()
    assert stopped["content"][0]["text"] == "echo: one"
    assert (stopped["stop_reason"], stopped["stop_sequence"]) == ("stop_sequence", "two")


def test_anthropic_tool_use(anthropic_mock):
    tools = [WEATHER_TOOL_ANTHROPIC, TIME_TOOL_ANTHROPIC]
    body = anthropic_mock.message("what's the weather in Paris?", tools=tools).json()
    assert body["stop_reason"] == "tool_use"
    (block,) = body["content"]
    assert block["type"] == "tool_use" and block["id"].startswith("toolu_")
    assert (block["name"], block["input"]) == ("get_weather", {"city": "Paris"})

    assert anthropic_mock.message("hello", tools=tools).json()["stop_reason"] == "end_turn"
    forced = anthropic_mock.message("hello", tools=tools, tool_choice={"type": "any"}).json()
    assert forced["content"][0]["name"] == "get_weather"
    named = anthropic_mock.message("hello", tools=tools, tool_choice={"type": "tool", "name": "get_time"}).json()
    assert named["content"][0]["name"] == "get_time"
    none = anthropic_mock.message("weather?", tools=tools, tool_choice={"type": "none"}).json()
    assert none["stop_reason"] == "end_turn"

    events = [(n, json.loads(d)) for n, d in sse(anthropic_mock.message("weather?", tools=tools, stream=True).text)]
    assert events[1][1]["content_block"]["type"] == "tool_use"
    partial = [d["delta"]["partial_json"] for n, d in events if n == "content_block_delta"]
    assert all(d["delta"]["type"] == "input_json_delta" for n, d in events if n == "content_block_delta")
    assert json.loads("".join(partial)) == {"city": "Paris"}
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"


def test_anthropic_tool_result_is_answered_with_text(anthropic_mock):
    messages = [
        {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny and warm"}]},
    ]
    body = anthropic_mock.post(
        "/v1/messages",
        {"model": "c", "max_tokens": 50, "messages": messages, "tools": [WEATHER_TOOL_ANTHROPIC]},
        headers=ANTHROPIC_HEADERS,
    ).json()
    assert body["stop_reason"] == "end_turn"
    assert "sunny and warm" in body["content"][0]["text"]


def assert_anthropic_error(response, status, kind):
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == kind and body["error"]["message"]


def test_anthropic_errors(anthropic_mock):
    body = {"model": "c", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    assert_anthropic_error(anthropic_mock.post("/v1/messages", body), 400, "invalid_request_error")  # no version
    no_max_tokens = {"model": "c", "messages": body["messages"]}
    response = anthropic_mock.post("/v1/messages", no_max_tokens, headers=ANTHROPIC_HEADERS)
    assert_anthropic_error(response, 400, "invalid_request_error")
    assert "max_tokens" in response.json()["error"]["message"]
    no_model = {"max_tokens": 10, "messages": body["messages"]}
    assert_anthropic_error(
        anthropic_mock.post("/v1/messages", no_model, headers=ANTHROPIC_HEADERS), 400, "invalid_request_error"
    )
    malformed = requests.post(anthropic_mock.url + "/v1/messages", data="{", headers=ANTHROPIC_HEADERS, timeout=10)
    assert_anthropic_error(malformed, 400, "invalid_request_error")
    assert_anthropic_error(anthropic_mock.post("/v1/complete", body, headers=ANTHROPIC_HEADERS), 404, "not_found_error")


def test_anthropic_required_key(start):
    provider = start("anthropic", require_key="ant-key")
    assert_anthropic_error(provider.message("hi"), 401, "authentication_error")
    assert_anthropic_error(provider.message("hi", headers={"x-api-key": "nope"}), 401, "authentication_error")
    assert provider.message("hi", headers={"x-api-key": "ant-key"}).status_code == 200
    recent = provider.stats()["recent"]
    assert [r["key_matched"] for r in recent] == [False, False, True]
    assert recent[-1]["headers"]["x-api-key"] == "***"


@pytest.mark.parametrize(("status", "kind"), [(500, "api_error"), (503, "overloaded_error"), (529, "overloaded_error")])
def test_anthropic_injected_error_types(anthropic_mock, status, kind):
    anthropic_mock.faults(error_rate=1, error_status=status)
    assert_anthropic_error(anthropic_mock.message("hi"), status, kind)


def test_anthropic_rate_limit(anthropic_mock):
    anthropic_mock.faults(rate_limit_rate=1, retry_after=2)
    response = anthropic_mock.message("hi")
    assert_anthropic_error(response, 429, "rate_limit_error")
    assert response.headers["retry-after"] == "2"


def test_anthropic_sdk(start):
    anthropic = pytest.importorskip("anthropic")
    provider = start("anthropic", require_key="ant-key")
    client = anthropic.Anthropic(base_url=provider.url, api_key="ant-key", max_retries=0)
    messages = [{"role": "user", "content": "hello from the sdk"}]

    message = client.messages.create(model="claude-sdk", max_tokens=64, messages=messages)
    assert message.content[0].text == "echo: hello from the sdk"
    assert (message.stop_reason, message.usage.input_tokens, message.usage.output_tokens) == ("end_turn", 4, 5)

    with client.messages.stream(model="claude-sdk", max_tokens=64, messages=messages) as stream:
        assert "".join(stream.text_stream) == "echo: hello from the sdk"
        final = stream.get_final_message()
    assert (final.stop_reason, final.usage.output_tokens) == ("end_turn", 5)

    weather = [{"role": "user", "content": "weather in Paris?"}]
    tool = client.messages.create(model="claude-sdk", max_tokens=64, messages=weather, tools=[WEATHER_TOOL_ANTHROPIC])
    assert tool.stop_reason == "tool_use"
    assert (tool.content[0].name, tool.content[0].input) == ("get_weather", {"city": "Paris"})
    with client.messages.stream(
        model="claude-sdk", max_tokens=64, messages=weather, tools=[WEATHER_TOOL_ANTHROPIC]
    ) as stream:
        streamed = stream.get_final_message()
    assert streamed.content[0].input == {"city": "Paris"}

    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=provider.url, api_key="wrong", max_retries=0).messages.create(
            model="claude-sdk", max_tokens=64, messages=messages
        )
    provider.faults(rate_limit_rate=1)
    with pytest.raises(anthropic.RateLimitError):
        client.messages.create(model="claude-sdk", max_tokens=64, messages=messages)
    provider.faults(error_rate=1, error_status=529)
    with pytest.raises(anthropic.InternalServerError) as overloaded:
        client.messages.create(model="claude-sdk", max_tokens=64, messages=messages)
    assert overloaded.value.status_code == 529
    assert overloaded.value.body["error"]["type"] == "overloaded_error"


# --------------------------------------------------------------------------- faults


def test_deterministic_error_rate_fails_exactly_that_fraction(openai_mock):
    openai_mock.faults(error_rate=0.5, deterministic=True)
    statuses = [openai_mock.chat("hi").status_code for _ in range(20)]
    assert statuses == [200, 500] * 10
    stats = openai_mock.stats()
    assert stats["by_status"] == {"200": 10, "500": 10}
    assert stats["by_fault"] == {"error": 10}


def test_deterministic_rates_combine(openai_mock):
    openai_mock.faults(rate_limit_rate=0.25, error_rate=0.25, malformed_rate=0.25, deterministic=True)
    for _ in range(40):
        openai_mock.chat("hi")
    by_fault = openai_mock.stats()["by_fault"]
    assert set(by_fault) == {"rate_limit", "error", "malformed"}
    assert all(9 <= n <= 10 for n in by_fault.values())  # a request fails at most once; the rest follow


def test_random_faults_are_seedable(openai_mock):
    def run():
        openai_mock.faults(error_rate=0.3, seed=7)
        return [openai_mock.chat("hi").status_code for _ in range(30)]

    first = run()
    assert run() == first
    assert 200 in first and 500 in first


def test_rate_limit_has_retry_after(openai_mock):
    openai_mock.faults(rate_limit_rate=1, retry_after=7)
    response = openai_mock.chat("hi")
    error = assert_openai_error(response, 429)
    assert response.headers["retry-after"] == "7"
    assert error["code"] == "rate_limit_exceeded"


def test_error_status_is_configurable(openai_mock):
    openai_mock.faults(error_rate=1, error_status=503)
    assert assert_openai_error(openai_mock.chat("hi"), 503)["type"] == "server_error"


def test_latency_delays_the_answer(openai_mock):
    started = time.monotonic()
    openai_mock.chat("hi")
    baseline = time.monotonic() - started
    assert baseline < 0.2

    openai_mock.faults(latency_ms=300)
    started = time.monotonic()
    assert openai_mock.chat("hi").status_code == 200
    assert time.monotonic() - started >= 0.3

    openai_mock.faults(latency_ms_range=[150, 200])
    started = time.monotonic()
    openai_mock.chat("hi")
    assert 0.15 <= time.monotonic() - started < 1.0

    openai_mock.faults(latency_ms=250)
    headers_at, _ = timed_sse_lines(
        openai_mock,
        "/v1/chat/completions",
        {"model": "m", "stream": True, "messages": [{"role": "user", "content": "x"}]},
    )
    assert headers_at >= 0.25


def test_ttft_and_inter_token_delays(openai_mock):
    openai_mock.faults(ttft_ms=250, inter_token_ms=100)
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "a b"}]}
    headers_at, lines = timed_sse_lines(openai_mock, "/v1/chat/completions", body)
    assert headers_at < 0.2  # headers go out before the first token
    first_at = lines[0][0]
    assert first_at >= 0.25
    content_times = [t for t, line in lines if '"content": "' in line and '"role"' not in line]
    assert len(content_times) == 3  # "echo:", " a", " b"
    gaps = [b - a for a, b in itertools.pairwise(content_times)]
    assert all(gap >= 0.09 for gap in gaps)
    assert lines[-1][1] == "data: [DONE]"


def test_cut_stream_ends_without_done(openai_mock, anthropic_mock):
    openai_mock.faults(cut_stream_after=2)
    chunks, done = openai_chunks(openai_mock.chat("one two three", stream=True).text)
    assert not done
    assert [c["choices"][0]["delta"].get("content") for c in chunks] == ["", "echo:", " one"]
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks)
    assert openai_mock.stats()["by_fault"] == {"cut_stream": 1}

    anthropic_mock.faults(cut_stream_after=1)
    names = [name for name, _ in sse(anthropic_mock.message("one two three", stream=True).text)]
    assert names == ["message_start", "content_block_start", "ping", "content_block_delta"]


def test_stream_error_after_sends_the_dialects_error_event(openai_mock, anthropic_mock):
    openai_mock.faults(stream_error_after=0)
    datas = [json.loads(d) for _, d in sse(openai_mock.chat("one two", stream=True).text)]
    assert [d.get("error", {}).get("type") for d in datas] == [None, "server_error"]
    assert datas[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert openai_mock.stats()["by_fault"] == {"stream_error": 1}

    anthropic_mock.faults(stream_error_after=1)
    events = sse(anthropic_mock.message("one two three", stream=True).text)
    assert [name for name, _ in events] == ["message_start", "content_block_start", "ping", "content_block_delta",
                                            "error"]
    assert json.loads(events[-1][1])["error"]["type"] == "overloaded_error"


def test_body_delay_sends_the_headers_first(openai_mock):
    openai_mock.faults(body_delay_ms=300)
    conn = http.client.HTTPConnection(openai_mock.host, openai_mock.port, timeout=10)
    sent = time.monotonic()
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    conn.request("POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"})
    response = conn.getresponse()
    headers_at = time.monotonic() - sent
    answer = json.loads(response.read())
    body_at = time.monotonic() - sent
    conn.close()
    assert response.status == 200 and headers_at < 0.25 and body_at >= 0.3
    assert answer["choices"][0]["message"]["content"] == "echo: x"
    # Errors and streams are not delayed by it.
    openai_mock.faults(body_delay_ms=1000, error_rate=1)
    started = time.monotonic()
    assert openai_mock.chat("x").status_code == 500
    assert time.monotonic() - started < 0.9
    assert openai_mock.stats()["by_path"]["/v1/chat/completions"] == 2


def test_malformed_bodies_are_not_json(openai_mock, anthropic_mock):
    openai_mock.faults(malformed_rate=1)
    response = openai_mock.chat("hi")
    assert response.status_code == 200
    with pytest.raises(ValueError):
        json.loads(response.text)
    streamed = openai_mock.chat("hi", stream=True)
    assert streamed.status_code == 200
    datas = [data for _, data in sse(streamed.text)]
    assert "[DONE]" not in datas
    with pytest.raises(ValueError):
        json.loads(datas[0])

    anthropic_mock.faults(malformed_rate=1)
    events = sse(anthropic_mock.message("hi", stream=True).text)
    assert events[0][0] == "message_start"
    with pytest.raises(ValueError):
        json.loads(events[0][1])
    assert "message_stop" not in [name for name, _ in events]


def test_hang_holds_requests_until_cleared(openai_mock):
    openai_mock.faults(hang=True)
    thread, outcome = in_background(
        lambda: requests.post(
            openai_mock.url + "/v1/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "x"}]},
            timeout=10,
        )
    )
    thread.join(0.3)
    assert thread.is_alive()
    assert openai_mock.stats()["recent"][-1]["fault"] == "hang"
    requests.delete(openai_mock.url + "/_mock/faults", timeout=10)
    thread.join(5)
    assert outcome["result"].status_code == 200


def test_hang_does_not_block_shutdown(start):
    provider = start("anthropic")
    provider.faults(hang=True)
    thread, outcome = in_background(lambda: provider.message("x"))
    wait_until(lambda: provider.stats()["total"] == 1)
    started = time.monotonic()
    provider.server.shutdown()
    provider.server.server_close()
    assert time.monotonic() - started < 1.0
    thread.join(5)
    assert isinstance(outcome.get("error"), requests.ConnectionError)


def test_faults_api(openai_mock):
    assert openai_mock.get("/_mock/faults").json() == {}
    config = {"error_rate": 0.5, "error_status": 502, "latency_ms_range": [1, 2], "seed": 3, "inter_token_ms": None}
    assert openai_mock.faults(**config) == {
        "error_rate": 0.5,
        "error_status": 502,
        "latency_ms_range": [1, 2],
        "seed": 3,
    }
    assert openai_mock.get("/_mock/faults").json()["error_status"] == 502
    assert openai_mock.http.delete(openai_mock.url + "/_mock/faults").json() == {}
    assert openai_mock.get("/_mock/faults").json() == {}
    for bad in [
        {"eror_rate": 0.5},
        {"error_rate": 2},
        {"error_status": 200},
        {"hang": "yes"},
        {"latency_ms": 1, "latency_ms_range": [1, 2]},
        {"latency_ms_range": [5, 1]},
        {"error_rate": 0.6, "rate_limit_rate": 0.6},
        {"invalid_json_rate": 0.6, "schema_mismatch_rate": 0.6},
        {"invalid_json_rate": -0.1},
        {"schema_mismatch_rate": "1"},
        {"extra_output_words": -1},
        {"extra_output_words": 1.5},
        [],
    ]:
        response = openai_mock.post("/_mock/faults", bad)
        assert response.status_code == 400, bad
        assert response.json()["error"]
    assert openai_mock.http.post(openai_mock.url + "/_mock/faults", data="{").status_code == 400
    assert openai_mock.get("/_mock/faults").json() == {}  # rejected configurations change nothing


# --------------------------------------------------------------------------- counting


def test_stats_count_and_reset(openai_mock):
    openai_mock.chat("one two", model="a")
    openai_mock.chat("three", model="b")
    openai_mock.chat("four", model="a", stream=True)
    openai_mock.post("/v1/embeddings", {"model": "e", "input": "five six"})
    openai_mock.post("/v1/unknown", {})
    stats = openai_mock.stats()
    assert stats["total"] == 5
    assert stats["by_path"] == {"/v1/chat/completions": 3, "/v1/embeddings": 1, "/v1/unknown": 1}
    assert stats["by_status"] == {"200": 4, "404": 1}
    assert stats["by_model"] == {"a": 2, "b": 1, "e": 1}
    assert (stats["streaming"], stats["non_streaming"]) == (1, 4)
    assert stats["input_tokens"] == 2 + 1 + 1 + 2
    assert stats["output_tokens"] == 3 + 2 + 2
    assert [r["path"] for r in stats["recent"]][-1] == "/v1/unknown"
    assert stats["recent"][0]["body"]["messages"][0]["content"] == "one two"
    assert stats["recent"][0]["status"] == 200 and stats["recent"][0]["method"] == "POST"

    assert openai_mock.post("/_mock/reset").status_code == 200
    stats = openai_mock.stats()
    assert (stats["total"], stats["by_path"], stats["recent"], stats["input_tokens"]) == (0, {}, [], 0)


def test_stats_keep_the_last_50_requests(openai_mock):
    for i in range(55):
        openai_mock.post("/v1/embeddings", {"model": f"m{i}", "input": "x"})
    stats = openai_mock.stats()
    assert stats["total"] == 55
    assert len(stats["recent"]) == 50
    assert stats["recent"][0]["model"] == "m5"


# --------------------------------------------------------------------------- command line


def test_cli_port_file_startup_faults_and_sigterm(tmp_path):
    port_file = tmp_path / "port"
    faults = {"latency_ms": 5, "error_status": 503}
    proc = subprocess.Popen(
        [
            sys.executable,
            str(SCRIPT),
            "--dialect",
            "anthropic",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--model",
            "claude-cli",
            "--port-file",
            str(port_file),
            "--faults",
            json.dumps(faults),
            "--quiet",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline().strip()
        port = int(port_file.read_text())
        assert line == f"listening on http://127.0.0.1:{port}"
        url = f"http://127.0.0.1:{port}"
        assert requests.get(url + "/_mock/faults", timeout=10).json() == faults
        models = requests.get(url + "/v1/models", headers=ANTHROPIC_HEADERS, timeout=10).json()
        assert models["data"][0]["id"] == "claude-cli"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0


def test_cli_rejects_bad_faults():
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--dialect", "openai", "--faults", '{"nope": 1}'],
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert proc.returncode == 2
    assert "--faults" in proc.stderr


def test_openai_responses_api_answers_items_and_streams_the_event_sequence(openai_mock, vllm_mock):
    body = {"model": "gpt-test", "instructions": "be brief", "input": "hello mock world"}
    made = openai_mock.post("/v1/responses", body).json()
    assert made["object"] == "response" and made["status"] == "completed"
    assert made["output"][0]["content"][0]["text"] == "echo: hello mock world"
    assert made["usage"]["output_tokens"] == 4
    events = sse(openai_mock.post("/v1/responses", {**body, "stream": True}).text)
    names = [e for e, _ in events]
    assert names[:2] == ["response.created", "response.in_progress"] and names[-1] == "response.completed"
    datas = [json.loads(d) for _, d in events]
    assert [d["sequence_number"] for d in datas] == list(range(len(datas)))
    text = "".join(d["delta"] for d in datas if d["type"] == "response.output_text.delta")
    assert text == datas[-1]["response"]["output"][0]["content"][0]["text"] == "echo: hello mock world"
    # A tool round trip in items, and a structured answer that follows its schema.
    tool = {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}
    call = openai_mock.post("/v1/responses", {"model": "m", "input": "weather in Paris?", "tools": [tool]}).json()
    item = call["output"][0]
    assert item["type"] == "function_call" and json.loads(item["arguments"]) == {"city": "Paris"}
    back = openai_mock.post("/v1/responses", {"model": "m", "tools": [tool], "input": [
        {"role": "user", "content": "weather in Paris?"}, item,
        {"type": "function_call_output", "call_id": item["call_id"], "output": "sunny"}]}).json()
    assert back["output"][0]["content"][0]["text"] == "tool result: sunny"
    schema = {"type": "object", "properties": {"score": {"type": "integer"}}, "required": ["score"]}
    rated = openai_mock.post("/v1/responses", {"model": "m", "input": "rate", "text": {
        "format": {"type": "json_schema", "name": "r", "schema": schema}}}).json()
    assert isinstance(json.loads(rated["output"][0]["content"][0]["text"])["score"], int)
    # Nothing is stored, and a vLLM-style server has no Responses API at all.
    assert openai_mock.post("/v1/responses", {**body, "previous_response_id": "resp_1"}).status_code == 404
    assert vllm_mock.post("/v1/responses", body).status_code == 404


# --------------------------------------------------------------------------- legacy completions, counts


def test_legacy_completions_answer_each_prompt(openai_mock):
    r = openai_mock.post("/v1/completions", {"model": "gpt-3.5-turbo-instruct", "prompt": ["say hi", [1, 2, 3]]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "text_completion" and body["id"].startswith("cmpl-")
    assert body["model"] == "gpt-3.5-turbo-instruct"
    assert [c["text"] for c in body["choices"]] == ["echo: say hi", "echo: 1 2 3"]
    assert [c["index"] for c in body["choices"]] == [0, 1]
    assert all(c["logprobs"] is None and c["finish_reason"] == "stop" for c in body["choices"])
    assert body["usage"] == {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}
    cut = openai_mock.post("/v1/completions", {"model": "m", "prompt": "one two three", "max_tokens": 2}).json()
    assert (cut["choices"][0]["text"], cut["choices"][0]["finish_reason"]) == ("echo: one", "length")
    bad = openai_mock.post("/v1/completions", {"model": "m", "prompt": 5})
    assert_openai_error(bad, 400, "prompt")
    assert openai_mock.post("/v1/completions", {"model": "m"}).status_code == 400


def test_legacy_completion_stream(openai_mock, vllm_mock):
    for mock in (openai_mock, vllm_mock):
        r = mock.post("/v1/completions", {"model": "m", "prompt": "hello there", "stream": True,
                                          "stream_options": {"include_usage": True}})
        assert r.headers["content-type"].startswith("text/event-stream")
        chunks, done = openai_chunks(r.text)
        assert done
        assert all(c["object"] == "text_completion" for c in chunks)
        assert "".join(c["choices"][0]["text"] for c in chunks if c["choices"]) == "echo: hello there"
        assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 3
    assert vllm_mock.post("/v1/completions", {"prompt": "x"}).json()["model"] == "org/served-model"


def test_openai_sdk_legacy_completions(openai_mock):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=openai_mock.url + "/v1", api_key="sk-test", max_retries=0)
    c = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="hello sdk")
    assert c.choices[0].text == "echo: hello sdk"
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model="gpt-3.5-turbo-instruct", prompt="hello sdk", stream=True))
    assert streamed == "echo: hello sdk"


def test_anthropic_count_tokens_matches_the_messages_usage(anthropic_mock):
    body = {"model": "claude-test", "system": "be brief", "messages": [{"role": "user", "content": "one two three"}]}
    r = anthropic_mock.post("/v1/messages/count_tokens", body, headers=ANTHROPIC_HEADERS)
    assert r.status_code == 200, r.text
    assert r.json() == {"input_tokens": 5}
    used = anthropic_mock.message("one two three", system="be brief").json()["usage"]["input_tokens"]
    assert used == 5
    missing = anthropic_mock.post("/v1/messages/count_tokens", {"model": "m"}, headers=ANTHROPIC_HEADERS)
    assert_anthropic_error(missing, 400, "invalid_request_error")
    assert anthropic_mock.stats()["by_path"]["/v1/messages/count_tokens"] == 2


def test_anthropic_sdk_count_tokens(anthropic_mock):
    anthropic = pytest.importorskip("anthropic")
    client = anthropic.Anthropic(base_url=anthropic_mock.url, api_key="sk-test", max_retries=0)
    n = client.messages.count_tokens(model="claude-test", messages=[{"role": "user", "content": "a b c d"}])
    assert n.input_tokens == 4


def test_vllm_tokenize_counts_messages_or_a_prompt(vllm_mock, openai_mock):
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "one two three"}]
    r = vllm_mock.post("/tokenize", {"model": "org/served-model", "messages": messages, "add_generation_prompt": True})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["count"], body["max_model_len"], len(body["tokens"])) == (5, 8192, 5)
    assert all(isinstance(t, int) for t in body["tokens"])
    assert vllm_mock.post("/tokenize", {"prompt": "a b"}).json()["count"] == 2
    assert vllm_mock.post("/tokenize", {"messages": []}).status_code == 400
    # The chat completion reports the same input tokens.
    chat = vllm_mock.post("/v1/chat/completions", {"messages": messages}).json()
    assert chat["usage"]["prompt_tokens"] == 5
    assert openai_mock.post("/tokenize", {"prompt": "a"}).status_code == 404, "hosted OpenAI has no tokenizer"


def test_hosted_dialects_report_their_rate_limits(openai_mock, anthropic_mock, vllm_mock):
    first = openai_mock.chat()
    assert first.headers["x-ratelimit-limit-requests"] == "10000"
    assert first.headers["x-ratelimit-remaining-requests"] == "9999"
    assert openai_mock.chat().headers["x-ratelimit-remaining-requests"] == "9998"
    openai_mock.faults(rate_limit_rate=1)
    limited = openai_mock.chat()
    assert limited.status_code == 429 and limited.headers["x-ratelimit-remaining-requests"] == "9997"
    m = anthropic_mock.message()
    assert m.headers["anthropic-ratelimit-requests-remaining"] == "9999"
    assert m.headers["anthropic-ratelimit-requests-reset"].endswith("Z")
    assert not any(k.lower().startswith("x-ratelimit") for k in vllm_mock.chat().headers)


# --------------------------------------------------------------------------- reasoning, forced schemas, caches


def test_a_forced_tool_answers_an_instance_of_its_input_schema(openai_mock, anthropic_mock):
    answer_tool = {"name": "structured_output__answer", "input_schema": ANSWER_SCHEMA}
    forced = {"type": "tool", "name": "structured_output__answer"}
    body = anthropic_mock.message("give me json", tools=[WEATHER_TOOL_ANTHROPIC, answer_tool], tool_choice=forced).json()
    (block,) = body["content"]
    assert block["type"] == "tool_use" and block["name"] == "structured_output__answer"
    fits_answer_schema(block["input"])
    events = [(n, json.loads(d)) for n, d in sse(
        anthropic_mock.message("give me json", tools=[answer_tool], tool_choice=forced, stream=True).text)]
    partial = "".join(d["delta"]["partial_json"] for n, d in events if n == "content_block_delta")
    fits_answer_schema(json.loads(partial))
    oai_tool = {"type": "function", "function": {"name": "answer", "parameters": ANSWER_SCHEMA}}
    body = openai_mock.chat("give me json", tools=[oai_tool],
                            tool_choice={"type": "function", "function": {"name": "answer"}}).json()
    fits_answer_schema(json.loads(body["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]))
    # A tool whose schema {"city": "Paris"} fits still gets it.
    weather = anthropic_mock.message("hi", tools=[WEATHER_TOOL_ANTHROPIC], tool_choice={"type": "any"}).json()
    assert weather["content"][0]["input"] == {"city": "Paris"}


def test_openai_reasoning_effort_answers_reasoning_content(openai_mock, vllm_mock):
    body = openai_mock.chat("why is the sky blue", reasoning_effort="low", max_completion_tokens=50).json()
    message = body["choices"][0]["message"]
    assert message["reasoning_content"] == "Reasoning (low) about: why is the sky blue"
    assert message["content"] == "echo: why is the sky blue"
    assert body["usage"]["completion_tokens_details"]["reasoning_tokens"] == 8
    assert body["usage"]["completion_tokens"] == 8 + 6
    assert "reasoning_content" not in openai_mock.chat("hi", reasoning_effort="minimal").json()["choices"][0]["message"]
    assert "reasoning_content" not in openai_mock.chat("hi").json()["choices"][0]["message"]
    chunks, _ = openai_chunks(openai_mock.chat("why", reasoning_effort="high", stream=True).text)
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert "".join(d.get("reasoning_content") or "" for d in deltas) == "Reasoning (high) about: why"
    first_content = next(i for i, d in enumerate(deltas) if d.get("content"))
    assert all(not d.get("reasoning_content") for d in deltas[first_content:]), "reasoning first"
    # OpenAI's reasoning models refuse max_tokens; vLLM takes it.
    refused = openai_mock.chat("hi", reasoning_effort="low", max_tokens=10)
    assert refused.status_code == 400 and "max_completion_tokens" in refused.json()["error"]["message"]
    assert vllm_mock.chat("hi", reasoning_effort="low", max_tokens=10).status_code == 200
    assert openai_mock.chat("hi", reasoning_effort="extreme").status_code == 400


def test_anthropic_thinking_answers_a_signed_thinking_block(anthropic_mock):
    thinking = {"type": "enabled", "budget_tokens": 1024}
    body = anthropic_mock.message("why", max_tokens=2048, thinking=thinking).json()
    block, text = body["content"]
    assert block["type"] == "thinking" and block["thinking"] == "Thinking about: why"
    assert block["signature"] == mock_provider.signature("Thinking about: why")
    assert text == {"type": "text", "text": "echo: why"}
    events = [(n, json.loads(d)) for n, d in sse(
        anthropic_mock.message("why", max_tokens=2048, thinking=thinking, stream=True).text)]
    deltas = [d for n, d in events if n == "content_block_delta"]
    assert "".join(d["delta"].get("thinking", "") for d in deltas if d["index"] == 0) == "Thinking about: why"
    assert [d["delta"]["signature"] for d in deltas if d["delta"]["type"] == "signature_delta"] == [block["signature"]]
    assert "".join(d["delta"].get("text", "") for d in deltas if d["index"] == 1) == "echo: why"
    # What the real API refuses.
    for extra, why in [
        ({"max_tokens": 1024}, "greater than"),
        ({"thinking": {"type": "enabled", "budget_tokens": 100}}, "1024"),
        ({"tools": [WEATHER_TOOL_ANTHROPIC], "tool_choice": {"type": "any"}}, "forces tool use"),
    ]:
        r = anthropic_mock.message("hi", **{"max_tokens": 2048, "thinking": thinking, **extra})
        assert r.status_code == 400 and why in r.json()["error"]["message"], r.text
    history = [{"role": "user", "content": "weather?"},
               {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "get_weather", "input": {}}]},
               {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "sun"}]}]
    r = anthropic_mock.post("/v1/messages", {"model": "c", "max_tokens": 2048, "thinking": thinking,
                                             "messages": history}, headers=ANTHROPIC_HEADERS)
    assert r.status_code == 400 and "must start with a thinking block" in r.json()["error"]["message"]
    forged = {"type": "thinking", "thinking": "x", "signature": "sig_forged"}
    history[1]["content"].insert(0, forged)
    r = anthropic_mock.post("/v1/messages", {"model": "c", "max_tokens": 2048, "thinking": thinking,
                                             "messages": history}, headers=ANTHROPIC_HEADERS)
    assert r.status_code == 400 and "signature" in r.json()["error"]["message"]
    forged["signature"] = mock_provider.signature("x")
    r = anthropic_mock.post("/v1/messages", {"model": "c", "max_tokens": 2048, "thinking": thinking,
                                             "messages": history}, headers=ANTHROPIC_HEADERS)
    assert r.status_code == 200, r.text


def test_cached_tokens_are_reported_in_each_dialects_usage(openai_mock, anthropic_mock):
    openai_mock.faults(cached_tokens=2)
    usage = openai_mock.chat("one two three").json()["usage"]
    assert usage["prompt_tokens"] == 3 and usage["prompt_tokens_details"] == {"cached_tokens": 2}
    chunks, _ = openai_chunks(openai_mock.chat("one two three", stream=True,
                                               stream_options={"include_usage": True}).text)
    assert chunks[-1]["usage"]["prompt_tokens_details"] == {"cached_tokens": 2}
    anthropic_mock.faults(cached_tokens=2)
    usage = anthropic_mock.message("one two three").json()["usage"]
    assert (usage["input_tokens"], usage["cache_read_input_tokens"]) == (1, 2)
    events = [(n, json.loads(d)) for n, d in sse(anthropic_mock.message("one two three", stream=True).text)]
    assert events[0][1]["message"]["usage"]["cache_read_input_tokens"] == 2
    # More than the prompt: capped at the prompt.
    openai_mock.faults(cached_tokens=50)
    assert openai_mock.chat("x").json()["usage"]["prompt_tokens_details"]["cached_tokens"] == 1
    with pytest.raises(AssertionError):
        openai_mock.faults(cached_tokens=-1)
