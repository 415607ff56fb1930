"""Structured outputs, reasoning and prompt caches through the gateway, as the official SDKs
use them, against OpenAI and Anthropic mocks: `chat.completions.parse` with a pydantic model
whichever dialect the backend speaks (an Anthropic backend gets a forced tool), reasoning
parameters reaching each backend in the form it accepts (read from the mock's recorded
request), thinking blocks and `reasoning_content` crossing dialects, streamed and not, and
cached prompt tokens in both SDKs' usage."""

import json

import pydantic

from test_gateway_sdk import WEATHER_OPENAI, anthropic_route, ant, last_body, oai, openai_route  # noqa: F401


class Rating(pydantic.BaseModel):
    answer: str
    score: int


ASK = [{"role": "user", "content": "rate the weather"}]


def body_of(mock):
    return last_body(mock)["body"]


def test_parse_through_an_openai_backend_passes_the_schema_through(openai_route, gateway):
    r = oai(gateway).chat.completions.parse(model="chat", messages=ASK, response_format=Rating)
    assert isinstance(r.choices[0].message.parsed, Rating)
    sent = body_of(openai_route)["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["name"] == "Rating"
    assert sent["json_schema"]["strict"] is True
    assert sent["json_schema"]["schema"]["required"] == ["answer", "score"]

    # An Anthropic caller's output_config.format reaches it as a strict response_format.
    m = ant(gateway).messages.parse(model="chat", max_tokens=100, messages=ASK, output_format=Rating)
    assert isinstance(m.parsed_output, Rating), m
    sent = body_of(openai_route)
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["strict"] is True
    assert sent["response_format"]["json_schema"]["schema"]["required"] == ["answer", "score"]


def test_parse_through_an_anthropic_backend_is_a_forced_tool_call(anthropic_route, gateway):
    client = oai(gateway)
    r = client.chat.completions.parse(model="assistant", messages=ASK, response_format=Rating)
    choice = r.choices[0]
    assert isinstance(choice.message.parsed, Rating)
    assert choice.finish_reason == "stop" and not choice.message.tool_calls
    sent = body_of(anthropic_route)
    assert sent["tool_choice"] == {"type": "tool", "name": "structured_output__Rating"}
    assert [t["name"] for t in sent["tools"]] == ["structured_output__Rating"]
    assert sent["tools"][0]["input_schema"]["required"] == ["answer", "score"]
    assert "response_format" not in sent and "system" not in sent

    with client.chat.completions.stream(model="assistant", messages=ASK, response_format=Rating) as s:
        final = s.get_final_completion()
    assert final.choices[0].message.parsed == choice.message.parsed
    assert final.choices[0].finish_reason == "stop"
    assert body_of(anthropic_route)["stream"] is True

    # The caller's own tools stay, and then some tool must be called: here the caller's.
    t = client.chat.completions.create(
        model="assistant", messages=[{"role": "user", "content": "hello"}], tools=[WEATHER_OPENAI],
        response_format={"type": "json_schema", "json_schema": {"name": "Rating", "schema": Rating.model_json_schema()}})
    assert t.choices[0].finish_reason == "tool_calls"
    assert t.choices[0].message.tool_calls[0].function.name == "get_weather"
    sent = body_of(anthropic_route)
    assert sent["tool_choice"] == {"type": "any"}
    assert [x["name"] for x in sent["tools"]] == ["get_weather", "structured_output__Rating"]


def test_reasoning_reaches_an_openai_backend_as_it_accepts_it(openai_route, gateway):
    r = oai(gateway).chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "why is the sky blue"}],
        reasoning_effort="low", max_completion_tokens=200)
    sent = body_of(openai_route)
    assert (sent["reasoning_effort"], sent["max_completion_tokens"]) == ("low", 200) and "max_tokens" not in sent
    assert r.choices[0].message.model_extra["reasoning_content"] == "Reasoning (low) about: why is the sky blue"

    # An Anthropic caller's max_tokens and thinking budget: max_completion_tokens (the mock, as
    # OpenAI's reasoning models, refuses max_tokens beside reasoning_effort) and the nearest
    # effort; the reasoning comes back as a thinking block.
    client = ant(gateway)
    ask = dict(model="chat", max_tokens=300, thinking={"type": "enabled", "budget_tokens": 4096},
               messages=[{"role": "user", "content": "why is the sky blue"}])
    m = client.messages.create(**ask)
    sent = body_of(openai_route)
    assert (sent["reasoning_effort"], sent["max_completion_tokens"]) == ("medium", 300) and "max_tokens" not in sent
    assert [b.type for b in m.content] == ["thinking", "text"]
    assert m.content[0].thinking == "Reasoning (medium) about: why is the sky blue"
    assert m.content[1].text == "echo: why is the sky blue"
    with client.messages.stream(**ask) as s:
        streamed = s.get_final_message()
    assert [b.type for b in streamed.content] == ["thinking", "text"]
    assert streamed.content[0].thinking == m.content[0].thinking
    assert streamed.content[1].text == m.content[1].text


def test_reasoning_reaches_an_anthropic_backend_as_a_thinking_budget(anthropic_route, gateway):
    client = oai(gateway)
    question = [{"role": "user", "content": "what is the weather in Paris"}]
    r = client.chat.completions.create(model="assistant", messages=question, tools=[WEATHER_OPENAI],
                                       reasoning_effort="high", max_completion_tokens=1000)
    sent = body_of(anthropic_route)
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 16384}
    assert sent["max_tokens"] == 16384 + 1000, "raised above the budget"
    message = r.choices[0].message
    assert message.model_extra["reasoning_content"] == "Thinking about: what is the weather in Paris"
    (block,) = message.model_extra["thinking_blocks"]
    assert block["type"] == "thinking" and block["signature"].startswith("sig_")
    assert r.choices[0].finish_reason == "tool_calls"

    # The next turn sends the signed thinking back, first in the assistant turn, as Anthropic
    # requires with thinking and tool use (the mock checks both, as the real API does).
    call = message.tool_calls[0]
    follow = client.chat.completions.create(model="assistant", tools=[WEATHER_OPENAI], reasoning_effort="low",
                                            messages=[*question, message.model_dump(exclude_none=True),
                                                      {"role": "tool", "tool_call_id": call.id, "content": "sunny"}])
    assert "sunny" in follow.choices[0].message.content
    turn = body_of(anthropic_route)["messages"][1]["content"]
    assert turn[0] == block and turn[1]["type"] == "tool_use"

    chunks = list(client.chat.completions.create(model="assistant", messages=[{"role": "user", "content": "why"}],
                                                 reasoning_effort="medium", stream=True))
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert "".join((d.model_extra or {}).get("reasoning_content") or "" for d in deltas) == "Thinking about: why"
    assert "".join(d.content or "" for d in deltas) == "echo: why"
    signed = [b for d in deltas for b in (d.model_extra or {}).get("thinking_blocks") or []]
    assert signed and signed[0]["signature"].startswith("sig_")


def test_cached_tokens_in_both_sdks_usage(openai_route, anthropic_route, gateway, namespace):
    openai_route.faults(cached_tokens=2)
    anthropic_route.faults(cached_tokens=2)
    words = [{"role": "user", "content": "one two three four"}]
    client = oai(gateway)
    for model in ("chat", "assistant"):
        u = client.chat.completions.create(model=model, messages=words).usage
        assert u.prompt_tokens_details.cached_tokens == 2, (model, u)
        assert u.prompt_tokens >= 4, (model, u)
        chunks = list(client.chat.completions.create(model=model, messages=words, stream=True,
                                                     stream_options={"include_usage": True}))
        assert chunks[-1].usage.prompt_tokens_details.cached_tokens == 2, (model, chunks[-1])
    a = ant(gateway)
    for model in ("chat", "assistant"):
        m = a.messages.create(model=model, max_tokens=50, messages=words)
        assert m.usage.cache_read_input_tokens == 2, (model, m.usage)
        with a.messages.stream(model=model, max_tokens=50, messages=words) as s:
            final = s.get_final_message()
        assert final.usage.cache_read_input_tokens == 2, (model, final.usage)
        assert final.usage.input_tokens == m.usage.input_tokens, (model, final.usage)
    # Counted apart, so priced at the cached price: 8 answers of 2 cached tokens.
    assert gateway.metric("switchyard_tokens_total", namespace=namespace, type="cached_input") == 16
