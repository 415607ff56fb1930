"""The SDK calls besides chat, through the gateway with the official SDKs unchanged: model
lookup (`models.retrieve`, both SDKs), legacy completions (`completions.create`), token
counting (`messages.count_tokens`: passed to Anthropic, vLLM's /tokenize, or the gateway's
estimate), the headers that reach backends and come back, and what an SDK raises for an
endpoint the gateway does not serve."""

import json
import textwrap

import anthropic
import openai
import pytest
import requests

from conftest import kubectl, kubectl_json, wait_until
from test_gateway_sdk import ant, apply, backend, last_body, oai, route, served

ASK = [{"role": "user", "content": "please count these five words"}]


def openai_compatible(name, mock, model):
    """An external OpenAI-dialect backend served by a mock of another server (vLLM)."""
    return [{"apiVersion": "switchyard.dev/v1alpha1", "kind": "InferenceBackend", "metadata": {"name": name},
             "spec": {"external": {"dialect": "openai", "baseUrl": f"{mock.url}/v1", "model": model}}}]


def narrow_tenant(namespace, key, routes):
    """A second Tenant whose key may use only `routes`."""
    kubectl("apply", "-f", "-", namespace=namespace, input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Secret",
         "metadata": {"name": "narrow-key", "labels": {"switchyard.dev/credential": "tenant-key"}},
         "stringData": {"key": key}},
        {"apiVersion": "switchyard.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": "narrow"},
         "spec": {"keys": [{"secretRef": {"name": "narrow-key", "key": "key"}}], "routes": {"names": list(routes)}}},
    ]}))


def test_models_are_retrieved_by_both_sdks_and_others_are_not_found(controller, namespace, gateway, mocks):
    mock = mocks("openai")
    apply(namespace, backend("openai", mock, "gpt-4o-mini"), route("chat", [("openai", 100)]),
          route("secret", [("openai", 100)]))
    served(gateway, "chat")
    served(gateway, "secret")

    m = oai(gateway).models.retrieve("chat")
    assert (m.id, m.object, m.owned_by) == ("chat", "model", "switchyard") and m.created > 0
    info = ant(gateway).models.retrieve("chat")
    assert (info.type, info.id, info.display_name) == ("model", "chat", "chat")
    assert info.created_at.year >= 2024
    assert sorted(x.id for x in ant(gateway).models.list()) == ["chat", "secret"]

    with pytest.raises(openai.NotFoundError, match="The model 'ghost' does not exist"):
        oai(gateway).models.retrieve("ghost")
    with pytest.raises(anthropic.NotFoundError, match="does not exist"):
        ant(gateway).models.retrieve("ghost")

    # A key that may not use a model is told exactly what a missing model gets.
    key = "sk-narrow-" + namespace[-12:]
    narrow_tenant(namespace, key, ["chat"])
    narrow = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0, timeout=30)

    def key_accepted():
        try:
            return narrow.models.retrieve("chat").id == "chat"
        except openai.AuthenticationError:
            return False

    wait_until(key_accepted, timeout=30, what="the narrow key accepted")
    with pytest.raises(openai.NotFoundError) as hidden:
        narrow.models.retrieve("secret")
    assert "The model 'secret' does not exist or you do not have access to it; models for your key: chat" in (
        hidden.value.message)
    with pytest.raises(openai.NotFoundError) as ghost:
        narrow.models.retrieve("ghost")
    assert hidden.value.message.replace("secret", "ghost") == ghost.value.message
    assert [x.id for x in narrow.models.list()] == ["chat"]
    assert mock.stats()["total"] == 0, "model lookups are answered by the gateway"


def test_legacy_completions_against_openai_and_vllm_and_the_error_against_anthropic(
        controller, namespace, gateway, mocks):
    hosted, vllm, claude = mocks("openai", key="sk-oai-e2e"), mocks("vllm"), mocks("anthropic", key="sk-ant-e2e")
    apply(namespace, backend("gpt", hosted, "gpt-3.5-turbo-instruct", key="sk-oai-e2e"),
          openai_compatible("vllm", vllm, "meta-llama/Llama-3.1-8B-Instruct"),
          backend("claude", claude, "claude-haiku-4-5", key="sk-ant-e2e"),
          route("instruct", [("gpt", 100)]), route("local", [("vllm", 100)]),
          route("claude-only", [("claude", 100)]))
    for model in ("instruct", "local", "claude-only"):
        served(gateway, model)
    client = oai(gateway)
    for model, mock, upstream_model in (("instruct", hosted, "gpt-3.5-turbo-instruct"),
                                        ("local", vllm, "meta-llama/Llama-3.1-8B-Instruct")):
        c = client.completions.create(model=model, prompt="Say hello to the gateway", max_tokens=16)
        assert c.object == "text_completion"
        assert c.choices[0].text == "echo: Say hello to the gateway"
        assert c.choices[0].finish_reason == "stop"
        assert (c.usage.prompt_tokens, c.usage.completion_tokens) == (5, 6)
        sent = last_body(mock)
        assert (sent["path"], sent["body"]["model"]) == ("/v1/completions", upstream_model)

        chunks = list(client.completions.create(model=model, prompt="Say hello to the gateway", stream=True))
        assert "".join(ch.choices[0].text for ch in chunks if ch.choices) == c.choices[0].text
        assert chunks[-1].choices[0].finish_reason == "stop"
        assert all(ch.choices for ch in chunks), "the usage chunk the gateway asked for is not forwarded unasked"
        usage = list(client.completions.create(model=model, prompt="Say hello to the gateway", stream=True,
                                               stream_options={"include_usage": True}))
        assert usage[-1].usage.completion_tokens == 6
    # Metered like chat: 6 output tokens per answer, 3 answers each.
    assert gateway.metric("switchyard_tokens_total", backend="gpt", type="output") == 18
    assert gateway.metric("switchyard_tokens_total", backend="vllm", type="output") == 18

    with pytest.raises(openai.BadRequestError, match="need an OpenAI-dialect backend"):
        client.completions.create(model="claude-only", prompt="x")
    assert claude.stats()["total"] == 0


def test_count_tokens_is_passed_to_anthropic_and_estimated_for_openai(controller, namespace, gateway, mocks):
    claude, gpt = mocks("anthropic", key="sk-ant-e2e"), mocks("openai", key="sk-oai-e2e")
    apply(namespace, backend("claude", claude, "claude-sonnet-4-5", key="sk-ant-e2e"),
          backend("gpt", gpt, "gpt-4o", key="sk-oai-e2e"),
          route("assistant", [("claude", 100)]), route("chat", [("gpt", 100)]))
    served(gateway, "assistant")
    served(gateway, "chat")
    client = ant(gateway)

    raw = client.messages.with_raw_response.count_tokens(model="assistant", system="be brief", messages=ASK)
    assert raw.parse().input_tokens == 7  # the mock counts words: 2 + 5
    assert "x-switchyard-estimate" not in raw.headers
    sent = last_body(claude)
    assert (sent["path"], sent["body"]["model"], sent["key_matched"]) == (
        "/v1/messages/count_tokens", "claude-sonnet-4-5", True)
    used = client.messages.create(model="assistant", max_tokens=16, system="be brief", messages=ASK)
    assert used.usage.input_tokens == 7, "the count is what the message then uses"

    raw = client.messages.with_raw_response.count_tokens(model="chat", system="be brief", messages=ASK)
    assert raw.headers["x-switchyard-estimate"] == "true"
    assert 7 <= raw.parse().input_tokens <= 20
    assert gpt.stats()["total"] == 0, "a backend that cannot count is not asked"
    # Counting is not inference: no tokens metered for it.
    assert gateway.metric("switchyard_tokens_total", backend="gpt") == 0
    assert gateway.metric("switchyard_tokens_total", backend="claude", type="input") == 7


def test_a_self_hosted_vllm_counts_with_its_tokenizer_and_completes(controller, namespace, gateway):
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

    def completes():
        try:
            return oai(gateway).completions.create(model="llama", prompt="hello pod").choices[0].text
        except (openai.APIStatusError, openai.APIConnectionError):
            return None

    assert wait_until(completes, timeout=120, what="the pod serving") == "echo: hello pod"
    raw = ant(gateway).messages.with_raw_response.count_tokens(model="llama", system="be brief", messages=ASK)
    assert raw.parse().input_tokens == 7
    assert "x-switchyard-estimate" not in raw.headers
    pod = kubectl_json("get", "ib", "llama", namespace=namespace)["status"]["endpoints"][0]["address"]
    recent = requests.get(f"http://{pod}/_mock/stats", timeout=5).json()["recent"]
    tokenize = [r for r in recent if r["path"] == "/tokenize"]
    assert len(tokenize) == 1
    body = tokenize[0]["body"]
    assert body["model"] == "meta-llama/Llama-3.1-8B-Instruct"
    assert body["messages"][0] == {"role": "system", "content": "be brief"}


def test_an_unknown_endpoint_raises_in_both_sdks_with_the_gateways_message(controller, namespace, gateway, mocks):
    mock = mocks("openai")
    apply(namespace, backend("openai", mock, "gpt-4o-mini"), route("chat", [("openai", 100)]))
    served(gateway, "chat")
    with pytest.raises(openai.NotFoundError) as o:
        oai(gateway).batches.list()
    assert "GET /v1/batches is not an endpoint of this gateway" in o.value.message
    with pytest.raises(anthropic.NotFoundError) as a:
        ant(gateway).messages.batches.list()
    assert "GET /v1/messages/batches is not an endpoint of this gateway" in a.value.message
    assert a.value.body["type"] == "error", "in Anthropic's shape"
    for e in ("POST /v1/responses", "POST /v1/completions", "POST /v1/messages/count_tokens",
              "GET /v1/models/{id}", "POST /v1/chat/completions", "POST /v1/embeddings"):
        assert e in o.value.message and e in a.value.message
    with pytest.raises(openai.APIStatusError, match="is not allowed on /v1/completions") as wrong:
        oai(gateway).get("/completions", cast_to=object)
    assert wrong.value.status_code == 405


def test_options_reach_only_their_dialects_backends_and_rate_limits_come_back(controller, namespace, gateway, mocks):
    gpt, claude = mocks("openai", key="sk-oai-e2e"), mocks("anthropic", key="sk-ant-e2e")
    apply(namespace, backend("gpt", gpt, "gpt-4o", key="sk-oai-e2e"),
          backend("claude", claude, "claude-sonnet-4-5", key="sk-ant-e2e"),
          route("chat", [("gpt", 100)]), route("assistant", [("claude", 100)]))
    served(gateway, "chat")
    served(gateway, "assistant")
    o = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=gateway.key, organization="org-e2e",
                      project="proj-e2e", max_retries=0, timeout=30)
    beta = {"anthropic-beta": "token-efficient-tools-2025-02-19"}

    raw = o.chat.completions.with_raw_response.create(model="chat", messages=ASK, extra_headers=beta)
    sent = last_body(gpt)
    assert (sent["headers"]["openai-organization"], sent["headers"]["openai-project"]) == ("org-e2e", "proj-e2e")
    assert "anthropic-beta" not in sent["headers"]
    assert sent["key_matched"] is True, "the backend's key, never the caller's"
    assert int(raw.headers["x-ratelimit-remaining-requests"]) == 10000 - gpt.stats()["total"]
    assert raw.headers["x-ratelimit-limit-requests"] == "10000"

    # Across dialects, neither dialect's options go along.
    o.chat.completions.create(model="assistant", messages=ASK, extra_headers=beta)
    sent = last_body(claude)
    assert sent["headers"]["anthropic-beta"] == beta["anthropic-beta"]
    assert "openai-organization" not in sent["headers"] and "openai-project" not in sent["headers"]
    raw = ant(gateway).messages.with_raw_response.create(
        model="assistant", max_tokens=16, messages=ASK,
        extra_headers={**beta, "openai-organization": "org-e2e"})
    sent = last_body(claude)
    assert sent["headers"]["anthropic-beta"] == beta["anthropic-beta"] and sent["key_matched"] is True
    assert "openai-organization" not in sent["headers"]
    assert int(raw.headers["anthropic-ratelimit-requests-remaining"]) == 10000 - claude.stats()["total"]
    ant(gateway).messages.create(model="chat", max_tokens=16, messages=ASK, extra_headers=beta)
    assert "anthropic-beta" not in last_body(gpt)["headers"]

    # On an error too: the provider's rate-limit state reaches the caller.
    gpt.faults(rate_limit_rate=1.0, retry_after=2)
    with pytest.raises(openai.RateLimitError) as limited:
        o.chat.completions.create(model="chat", messages=ASK)
    headers = limited.value.response.headers
    assert headers["retry-after"] == "2"
    assert int(headers["x-ratelimit-remaining-requests"]) == 10000 - gpt.stats()["total"]
