"""Structured-output validity: the gateway judges every answer to a request that asked for a
JSON schema (or JSON mode), counts it in switchyard_structured_output_total, and a route's
custom analysis check over that metric rolls a migration back when the new backend's JSON
breaks. Requests go through the official OpenAI SDK; the providers are mocks whose answer
faults spoil a share of their JSON answers while still answering 200."""

import threading

import openai

from conftest import wait_until
from migration import events, status, watch_steps
from test_gateway_sdk import apply, backend, oai, route, served

SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string"}, "score": {"type": "integer", "minimum": 1}},
    "required": ["answer", "score"],
    "additionalProperties": False,
}
RESPONSE_FORMAT = {"type": "json_schema", "json_schema": {"name": "rating", "strict": True, "schema": SCHEMA}}
METRIC = "switchyard_structured_output_total"

# What a route gates on: the share of the gaining backends' JSON answers that were valid.
VALIDITY = (
    'sum(rate(switchyard_structured_output_total{namespace="{{namespace}}",route="{{route}}",'
    'backend=~"{{backend}}",outcome="valid"}[{{interval}}])) / '
    'sum(rate(switchyard_structured_output_total{namespace="{{namespace}}",route="{{route}}",'
    'backend=~"{{backend}}"}[{{interval}}]))'
)


def ask(client, stream=False):
    messages = [{"role": "user", "content": "rate the weather"}]
    if not stream:
        return client.chat.completions.create(model="chat", messages=messages, response_format=RESPONSE_FORMAT)
    chunks = client.chat.completions.create(model="chat", messages=messages, response_format=RESPONSE_FORMAT,
                                            stream=True)
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_each_json_answer_is_counted_by_outcome(controller, namespace, gateway, mocks):
    mock = mocks("openai")
    mock.faults(invalid_json_rate=0.25, schema_mismatch_rate=0.25, deterministic=True)
    apply(namespace, backend("provider", mock, "gpt-4o"), route("chat", [("provider", 100)]))
    served(gateway, "chat")
    client = oai(gateway)
    for i in range(12):
        ask(client, stream=i % 2 == 1)
    # A request that asked for no JSON is not judged.
    client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])

    spoiled = mock.stats()["by_fault"]
    assert spoiled.get("invalid_json") and spoiled.get("schema_mismatch"), spoiled
    counted = {o: gateway.metric(METRIC, namespace=namespace, route="chat", backend="provider", provider="openai",
                                 outcome=o)
               for o in ("valid", "invalid_json", "schema_mismatch")}
    assert counted == {"valid": 12 - spoiled["invalid_json"] - spoiled["schema_mismatch"],
                       "invalid_json": spoiled["invalid_json"], "schema_mismatch": spoiled["schema_mismatch"]}

    # JSON mode asks for any JSON: an object missing the schema's properties is still valid.
    mock.faults(schema_mismatch_rate=1)
    client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}],
                                   response_format={"type": "json_object"})
    assert gateway.metric(METRIC, namespace=namespace, backend="provider", outcome="valid") == counted["valid"] + 1


def test_a_route_gates_on_the_validity_of_the_new_backends_json(controller, namespace, gateway, mocks):
    stable, candidate = mocks("openai"), mocks("openai")
    candidate.faults(invalid_json_rate=0.5, seed=5)
    roll = {"steps": [20, 50, 100], "stepDuration": "120s",
            "analysis": {"interval": "5s", "minRequests": 5, "maxErrorRate": 0.02, "failureLimit": 0,
                         "metrics": [{"name": "json-validity", "query": VALIDITY, "min": 0.95}]}}
    apply(namespace, backend("stable", stable, "gpt-4o"), backend("candidate", candidate, "llama"),
          route("chat", [("stable", 100)], rollout=roll))
    served(gateway, "chat")
    wait_until(lambda: status(namespace).get("phase") == "Stable", timeout=30, what="stable route")

    stop = threading.Event()

    def load():
        client = oai(gateway)
        while not stop.is_set():
            try:
                ask(client)
            except openai.APIError:
                pass
            stop.wait(0.05)

    threads = [threading.Thread(target=load, daemon=True) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        apply(namespace, route("chat", [("candidate", 100)], rollout=roll))
        watch_steps(namespace, lambda st: st.get("phase") == "RolledBack", timeout=90)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    st = status(namespace)
    check = next(c for c in st["lastAnalysis"]["checks"] if c["name"] == "json-validity")
    assert check["verdict"] == "Fail" and check["value"] < 0.95, check
    # The answers were 200s all along: the error rate alone would have let it through.
    errors = next(c for c in st["lastAnalysis"]["checks"] if c["name"] == "error-rate")
    assert errors["verdict"] == "Pass", errors
    assert events(namespace, "RolledBack")
    assert st["weights"] == [{"name": "stable", "weight": 1000}]
