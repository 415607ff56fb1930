"""The OpenAI SDK's primary API, `client.responses`, through the gateway: passed through to a
provider that has the Responses API, translated to Chat Completions for a vLLM-style server
that has only that, and to Anthropic Messages. The application code is the same for all
three; only the route's backend differs."""

import json

import openai
import pydantic
import pytest

from test_gateway_sdk import apply, backend, oai, route, served

WEATHER = {"type": "function", "name": "get_weather", "description": "Current weather of a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                          "additionalProperties": False}}
# The path each kind of backend must be called on: what proves passthrough vs translation.
PATH = {"gpt": "/v1/responses", "llama": "/v1/chat/completions", "claude": "/v1/messages"}


class Rating(pydantic.BaseModel):
    answer: str
    score: int


@pytest.fixture
def routes(controller, namespace, gateway, mocks):
    """Three routes, one per kind of backend: `gpt` (OpenAI, with the Responses API),
    `llama` (a vLLM server: Chat Completions only) and `claude` (Anthropic)."""
    gpt, llama, claude = mocks("openai"), mocks("vllm", model="meta-llama/Llama-3.1-8B-Instruct"), mocks("anthropic")
    native = backend("gpt", gpt, "gpt-4o")
    native[0]["spec"]["capabilities"] = {"responsesApi": True}
    vllm = backend("llama", llama, "meta-llama/Llama-3.1-8B-Instruct")
    vllm[0]["spec"]["external"].update(dialect="openai", baseUrl=f"{llama.url}/v1")
    apply(namespace, native, vllm, backend("claude", claude, "claude-sonnet-4-5"),
          route("gpt", [("gpt", 100)]), route("llama", [("llama", 100)]), route("claude", [("claude", 100)]))
    for name in PATH:
        served(gateway, name)
    return {"gpt": gpt, "llama": llama, "claude": claude}


def calls(mock, path):
    return [r for r in mock.stats()["recent"] if r["path"] == path]


@pytest.mark.parametrize("name", list(PATH))
def test_create_and_stream_give_the_same_response(routes, gateway, name):
    client = oai(gateway)
    made = client.responses.create(model=name, instructions="Be brief.", input="hello there gateway",
                                   max_output_tokens=64)
    assert made.status == "completed"
    assert made.output_text == "echo: hello there gateway"
    assert made.usage.input_tokens > 0 and made.usage.output_tokens == 4
    with client.responses.stream(model=name, instructions="Be brief.", input="hello there gateway",
                                 max_output_tokens=64) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == made.output_text
    assert [i.type for i in final.output] == [i.type for i in made.output]
    assert (final.usage.input_tokens, final.usage.output_tokens) == (made.usage.input_tokens, made.usage.output_tokens)
    sent = calls(routes[name], PATH[name])
    assert len(sent) == 2, f"both requests reached {PATH[name]}"
    if name == "gpt":
        assert sent[0]["body"]["input"] == "hello there gateway" and sent[0]["body"]["store"] is False
    elif name == "llama":
        # A reasoning-capable server gets max_completion_tokens, never max_tokens.
        assert sent[0]["body"]["max_completion_tokens"] == 64 and "max_tokens" not in sent[0]["body"]
        assert sent[0]["body"]["messages"][0] == {"role": "system", "content": "Be brief."}
    else:
        assert sent[0]["body"]["system"] == "Be brief." and sent[0]["body"]["max_tokens"] == 64


@pytest.mark.parametrize("name", list(PATH))
def test_a_tool_round_trip(routes, gateway, name):
    client = oai(gateway)
    question = {"role": "user", "content": "What is the weather in Paris?"}
    first = client.responses.create(model=name, input=[question], tools=[WEATHER])
    calls_made = [i for i in first.output if i.type == "function_call"]
    assert [(c.name, json.loads(c.arguments)) for c in calls_made] == [("get_weather", {"city": "Paris"})]
    # The SDK's own output items go back as input, with the tool's result.
    second = client.responses.create(model=name, tools=[WEATHER], input=[
        question, *first.output, {"type": "function_call_output", "call_id": calls_made[0].call_id, "output": "sunny"}])
    assert second.output_text == "tool result: sunny"


@pytest.mark.parametrize("name", list(PATH))
def test_parse_with_a_pydantic_model_is_judged_like_chat(routes, gateway, namespace, name):
    client = oai(gateway)
    parsed = client.responses.parse(model=name, input="rate the weather", text_format=Rating).output_parsed
    assert isinstance(parsed, Rating)
    with client.responses.stream(model=name, input="rate the weather", text_format=Rating) as stream:
        assert isinstance(stream.get_final_response().output_parsed, Rating)
    # Both answers counted where a migration's JSON-validity check reads them.
    assert gateway.metric("switchyard_structured_output_total", namespace=namespace, route=name,
                          outcome="valid") == 2


def test_the_reasoning_effort_reaches_a_chat_backend(routes, gateway):
    oai(gateway).responses.create(model="llama", input="think first", reasoning={"effort": "low"})
    assert calls(routes["llama"], PATH["llama"])[-1]["body"]["reasoning_effort"] == "low"


def test_stored_responses_are_refused_with_what_to_do_instead(routes, gateway):
    client = oai(gateway)
    with pytest.raises(openai.BadRequestError, match="send the whole conversation in 'input'"):
        client.responses.create(model="gpt", input="again", previous_response_id="resp_123")
    with pytest.raises(openai.BadRequestError, match="set it to false"):
        client.responses.create(model="llama", input="keep this", store=True)
    assert not calls(routes["gpt"], PATH["gpt"]) and not calls(routes["llama"], PATH["llama"])


def test_a_stream_that_fails_midway_raises_in_the_sdk(routes, gateway):
    routes["llama"].faults(stream_error_after=2)
    with pytest.raises(openai.APIError, match="Overloaded"):
        with oai(gateway).responses.stream(model="llama", input="one two three four five six") as stream:
            for _ in stream:
                pass
