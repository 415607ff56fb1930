#!/usr/bin/env python3
"""A scriptable LLM provider for Switchyard's tests, speaking the real wire formats over HTTP.

One process plays one provider dialect:

* ``openai``    - ``POST /v1/chat/completions``, ``POST /v1/completions``, ``POST /v1/embeddings``,
  ``GET /v1/models``
* ``anthropic`` - ``POST /v1/messages``, ``POST /v1/messages/count_tokens``, ``GET /v1/models``
* ``vllm``      - the ``openai`` endpoints plus ``POST /tokenize``, ``GET /health`` and Prometheus
  ``GET /metrics``

Answers are deterministic (an echo of the last user message, a tool call, or a summary of a
tool result), tokens are whitespace-separated words, and every request is counted. Tests steer
the server over HTTP: ``/_mock/stats``, ``/_mock/reset`` and ``/_mock/faults`` (errors, rate
limits, latency, slow or cut streams, malformed bodies, spoiled JSON answers, hangs). See README.md beside this file.

Standard library only, so it runs under any ``python3`` (3.11+), also inside a network
namespace. Run ``python3 mock_provider.py --help`` for the command line; in-process use goes
through :func:`serve`.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.server
import json
import math
import os
import random
import re
import select
import signal
import socket
import socketserver
import ssl
import struct
import sys
import threading
import time
import uuid
from base64 import b64encode
from collections import Counter, deque
from dataclasses import dataclass, field
from fractions import Fraction
from urllib.parse import urlsplit

DIALECTS = ("openai", "anthropic", "vllm")
DEFAULT_MODELS = {
    "openai": "gpt-4o-mini",
    "anthropic": "claude-3-5-haiku-latest",
    "vllm": "meta-llama/Llama-3.1-8B-Instruct",
}

EMBEDDING_DIMENSIONS = 8
MAX_ECHO_WORDS = 64  # longest reply body, so a huge prompt cannot make a huge (slow) stream
RECENT_REQUESTS = 50
FALLBACK_REPLY = "Hello from the Switchyard mock provider."
TOOL_ARGUMENTS = {"city": "Paris"}
WEATHER = re.compile(r"\bweather\b", re.IGNORECASE)
SECRET_HEADERS = ("authorization", "x-api-key")
SSE_CONTENT_TYPE = "text/event-stream; charset=utf-8"
JSON_CONTENT_TYPE = "application/json"
HANG_POLL_SECONDS = 0.05

# Neutral finish reasons of an Answer, spelled per dialect.
OPENAI_FINISH = {"stop": "stop", "stop_sequence": "stop", "length": "length", "tool": "tool_calls"}
ANTHROPIC_STOP = {"stop": "end_turn", "stop_sequence": "stop_sequence", "length": "max_tokens", "tool": "tool_use"}

# Bucket bounds vLLM uses for these histograms.
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
E2E_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0)

# Which endpoint method answers (path, HTTP method), per dialect.
OPENAI_ROUTES = {
    "/v1/chat/completions": {"POST": "_chat"},
    "/v1/embeddings": {"POST": "_embeddings"},
    "/v1/models": {"GET": "_models"},
}
ROUTES = {
    # OpenAI itself has the Responses API; vLLM-style servers are reached through Chat.
    "openai": {**OPENAI_ROUTES, "/v1/responses": {"POST": "_responses"}},
    "vllm": {**OPENAI_ROUTES, "/health": {"GET": "_health"}, "/metrics": {"GET": "_metrics"}},
    "anthropic": {"/v1/messages": {"POST": "_messages"}, "/v1/models": {"GET": "_anthropic_models"}},
}
# Legacy text completions (OpenAI and vLLM) and token counting (Anthropic's count_tokens,
# vLLM's /tokenize at the server's root, as on a real vLLM server).
for _routes in (ROUTES["openai"], ROUTES["vllm"]):
    _routes["/v1/completions"] = {"POST": "_completions"}
ROUTES["vllm"]["/tokenize"] = {"POST": "_tokenize"}
ROUTES["anthropic"]["/v1/messages/count_tokens"] = {"POST": "_count_tokens"}
# Endpoints that, as on a real vLLM server, need no key and are never subject to faults.
UNGUARDED = frozenset({"/health", "/metrics"})
# Requests a minute the hosted dialects claim to allow, in their rate-limit headers.
RATE_LIMIT_REQUESTS = 10_000
# Legacy completions' default max_tokens, as OpenAI's.
COMPLETION_MAX_TOKENS = 16
VLLM_MAX_MODEL_LEN = 8192


# --------------------------------------------------------------------------- answers


def words(text: str) -> int:
    """The mock's token count: whitespace-separated words."""
    return len(text.split())


def text_of(content) -> str:
    """Flattens message content (a string, or a list of content parts / blocks) to plain text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(text_of(part) for part in content)
    if isinstance(content, dict):
        if isinstance(content.get("text"), str):
            return content["text"]
        if "content" in content:  # Anthropic tool_result block
            return text_of(content["content"])
        if "input" in content:  # Anthropic tool_use block
            return json.dumps(content["input"])
    return ""


def pieces(text: str) -> list[str]:
    """Splits text into the chunks a stream sends, one word each; they concatenate back to the text."""
    return [word if i == 0 else " " + word for i, word in enumerate(text.split())]


@dataclass
class Prompt:
    """What the mock model looks at, extracted from a request of either dialect."""

    input_tokens: int
    last_text: str  # text of the last user message
    tool_result: str | None = None  # set when the conversation ends with tool results
    tool: str | None = None  # tool to call instead of answering with text
    max_tokens: int | None = None
    stops: list[str] = field(default_factory=list)
    json_mode: bool = False  # answer with a JSON object (JSON mode, or a schema below)
    json_schema: dict | None = None  # the schema structured output asked for
    tool_schema: dict | None = None  # input schema of the tool to call


@dataclass
class Answer:
    """The mock model's output: text chunks, or the argument chunks of one call to `tool_name`."""

    chunks: list[str]
    finish: str  # key of OPENAI_FINISH / ANTHROPIC_STOP
    tool_name: str | None = None
    stop_sequence: str | None = None
    tool_input: dict | None = None  # the arguments of the call to `tool_name`

    @property
    def text(self) -> str:
        return "".join(self.chunks)

    @property
    def output_tokens(self) -> int:
        return len(self.chunks)


def choose_tool(names: list[str], forced: str | None, allowed: bool, prompt_text: str, tool_result) -> str | None:
    if not names or not allowed:
        return None
    if forced:
        return forced
    # A tool result is answered with text, so agent loops terminate.
    if tool_result is None and WEATHER.search(prompt_text):
        return names[0]
    return None


def _resolve(schema, root: dict, depth: int = 0):
    """Follows a local `$ref` (`#`, `#/$defs/x`, `#/definitions/x`) to the schema it names."""
    while isinstance(schema, dict) and isinstance(schema.get("$ref"), str) and depth < 16:
        target = root
        for part in schema["$ref"].lstrip("#").split("/")[1:]:
            target = target.get(part.replace("~1", "/").replace("~0", "~"), {}) if isinstance(target, dict) else {}
        schema, depth = target, depth + 1
    return schema if isinstance(schema, dict) else {}


def example(schema, root: dict, text: str, depth: int = 0):
    """A value that fits `schema`'s types, enums and required properties; strings carry `text`."""
    schema = _resolve(schema, root)
    if depth > 8:
        return None
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for combinator in ("anyOf", "oneOf", "allOf"):
        if isinstance(schema.get(combinator), list) and schema[combinator]:
            return example(schema[combinator][0], root, text, depth + 1)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
        required = [name for name in schema.get("required") or [] if isinstance(name, str)]
        return {name: example(properties.get(name, {}), root, text, depth + 1) for name in required}
    if kind == "array":
        count = schema.get("minItems", 0) if _is_int(schema.get("minItems")) else 0
        return [example(schema.get("items", {}), root, text, depth + 1) for _ in range(count)]
    if kind in ("integer", "number"):
        low, high = schema.get("minimum"), schema.get("maximum")
        value = low if _is_number(low) else 0
        if _is_number(schema.get("exclusiveMinimum")):
            value = max(value, schema["exclusiveMinimum"] + 1)
        if _is_number(high) and value > high:
            value = high
        return math.ceil(value) if kind == "integer" else value
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    low = schema.get("minLength", 0) if _is_int(schema.get("minLength")) else 0
    high = schema.get("maxLength") if _is_int(schema.get("maxLength")) else None
    value = text.ljust(low, ".")
    return value[:high] if high is not None else value


def json_reply(prompt: Prompt, text: str, fault: str | None) -> str:
    """The JSON text of a JSON-mode or schema answer, spoiled as `fault` (invalid_json,
    schema_mismatch) asks."""
    if prompt.json_schema is None:
        value = {"reply": text}
        required = ["reply"]
    else:
        value = example(prompt.json_schema, prompt.json_schema, text)
        required = [n for n in prompt.json_schema.get("required") or [] if isinstance(n, str)]
    if fault == "schema_mismatch":
        # Valid JSON that misses a required property (or, with none to miss, is not an object).
        value = {k: v for k, v in value.items() if k != required[0]} if required and isinstance(value, dict) else "mismatch"
    out = json.dumps(value)
    # Truncated mid-object, as an answer cut short is: a 200 whose text does not parse.
    return out[: max(1, len(out) - 2)] if fault == "invalid_json" else out


def structured_request(body: dict, dialect: str) -> tuple[bool, dict | None]:
    """Whether a request asks for JSON, and its schema: OpenAI `response_format`, Anthropic
    `output_config.format` (or the beta `output_format`), or a system prompt that asks for a
    JSON object (what a gateway that turns JSON mode into a prompt writes), with the schema
    after "JSON Schema:" when it gives one."""
    if dialect != "anthropic":
        rf = body.get("response_format")
        kind = rf.get("type") if isinstance(rf, dict) else None
        if kind == "json_schema":
            schema = (rf.get("json_schema") or {}).get("schema")
            return True, schema if isinstance(schema, dict) else None
        return kind == "json_object", None
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else body.get("output_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        return True, fmt.get("schema") if isinstance(fmt.get("schema"), dict) else None
    system = text_of(body.get("system") or "")
    if "JSON object" not in system:
        return False, None
    at = system.find("JSON Schema:")
    if at < 0:
        return True, None
    try:
        schema, _ = json.JSONDecoder().raw_decode(system[at + len("JSON Schema:"):].lstrip())
    except ValueError:
        return True, None
    return True, schema if isinstance(schema, dict) else None


def answer(prompt: Prompt, fault: str | None = None, extra_words: int = 0) -> Answer:
    """The reply to `prompt`. `extra_words` (the extra_output_words fault) pads a text answer
    with that many more words, so a model that grew wordier shows in the content and in the
    usage's output tokens alike; max_tokens and stop sequences still cut the padded text."""
    if prompt.tool:
        arguments = tool_arguments(prompt)
        return Answer(pieces(json.dumps(arguments)), "tool", tool_name=prompt.tool, tool_input=arguments)
    if prompt.tool_result is not None:
        prefix, body = "tool result:", prompt.tool_result
    else:
        prefix, body = "echo:", prompt.last_text
    body_words = body.split()[:MAX_ECHO_WORDS]
    text = " ".join([prefix, *body_words]) if body_words else FALLBACK_REPLY
    if extra_words and not prompt.json_mode:
        text = " ".join([text, *(f"more{i}" for i in range(1, extra_words + 1))])
    if prompt.json_mode:
        text = json_reply(prompt, text, fault)
    finish, stop_sequence = "stop", None
    hits = [(text.find(s), s) for s in prompt.stops if s and s in text]
    if hits:
        position, stop_sequence = min(hits)
        text, finish = text[:position], "stop_sequence"
    chunks = pieces(text)
    if prompt.max_tokens is not None and len(chunks) > prompt.max_tokens:
        chunks, finish, stop_sequence = chunks[: prompt.max_tokens], "length", None
    return Answer(chunks, finish, stop_sequence=stop_sequence)


def tool_arguments(prompt: Prompt) -> dict:
    """The input of a tool call: `{"city": "Paris"}` when it fits the tool's schema, else an
    instance of the schema (a forced tool that carries a structured answer)."""
    schema = prompt.tool_schema
    if not isinstance(schema, dict):
        return TOOL_ARGUMENTS
    required = [n for n in schema.get("required") or [] if isinstance(n, str)]
    if all(n in TOOL_ARGUMENTS for n in required):
        return TOOL_ARGUMENTS
    value = example(schema, schema, " ".join(["echo:", *prompt.last_text.split()[:MAX_ECHO_WORDS]]))
    return value if isinstance(value, dict) else TOOL_ARGUMENTS


def tool_schemas(body: dict, dialect: str) -> dict:
    """Each tool's input schema by name."""
    out = {}
    for t in body.get("tools") or []:
        if not isinstance(t, dict):
            continue
        if dialect == "anthropic":
            name, schema = t.get("name"), t.get("input_schema")
        else:
            f = t.get("function") if isinstance(t.get("function"), dict) else {}
            name, schema = f.get("name"), f.get("parameters")
        if isinstance(name, str) and isinstance(schema, dict):
            out[name] = schema
    return out


def openai_prompt(body: dict, messages: list[dict], max_tokens: int | None, stops: list[str]) -> Prompt:
    input_tokens = 0
    for message in messages:
        input_tokens += words(text_of(message.get("content")))
        for call in message.get("tool_calls") or []:
            if isinstance(call, dict):
                input_tokens += words(str((call.get("function") or {}).get("arguments", "")))
    trailing_results = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        trailing_results.append(text_of(message.get("content")))
    tool_result = " ".join(reversed(trailing_results)) if trailing_results else None
    last_text = next((text_of(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")

    names = [
        t["function"]["name"]
        for t in body.get("tools") or []
        if isinstance(t, dict) and isinstance(t.get("function"), dict) and isinstance(t["function"].get("name"), str)
    ]
    choice = body.get("tool_choice", "auto")
    forced = None
    if isinstance(choice, dict):
        forced = (choice.get("function") or {}).get("name")
    elif choice == "required" and names:
        forced = names[0]
    json_mode, json_schema = structured_request(body, "openai")
    tool = choose_tool(names, forced, choice != "none", last_text, tool_result)
    return Prompt(
        input_tokens=input_tokens,
        last_text=last_text,
        tool_result=tool_result,
        tool=tool,
        max_tokens=max_tokens,
        stops=stops,
        json_mode=json_mode,
        json_schema=json_schema,
        tool_schema=tool_schemas(body, "openai").get(tool),
    )


def responses_messages(body: dict) -> tuple[list[dict], str | None]:
    """The chat messages a Responses API request's `instructions` and `input` mean, or why
    the input is not valid."""
    messages = []
    if isinstance(body.get("instructions"), str):
        messages.append({"role": "system", "content": body["instructions"]})
    items = body.get("input")
    if isinstance(items, str):
        return messages + [{"role": "user", "content": items}], None
    if not isinstance(items, list):
        return [], "Missing required parameter: 'input'."
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            return [], f"Invalid type for 'input[{i}]': expected an object."
        kind = item.get("type", "message")
        if kind == "message":
            messages.append({"role": item.get("role"), "content": text_of(item.get("content"))})
        elif kind == "function_call":
            messages.append({"role": "assistant", "content": None, "tool_calls": [
                {"id": item.get("call_id"), "type": "function",
                 "function": {"name": item.get("name"), "arguments": item.get("arguments", "")}}]})
        elif kind == "function_call_output":
            messages.append({"role": "tool", "tool_call_id": item.get("call_id"), "content": text_of(item.get("output"))})
        elif kind != "reasoning":
            return [], f"Invalid value for 'input[{i}].type': {kind!r} is not supported by this mock."
    if not messages:
        return [], "Missing required parameter: 'input'."
    return messages, None


def responses_as_chat(body: dict) -> dict:
    """The tool and format fields of a Responses request in their Chat Completions form,
    which is what `openai_prompt` reads."""
    tools = [{"type": "function", "function": {"name": t.get("name")}}
             for t in body.get("tools") or [] if isinstance(t, dict) and t.get("type") == "function"]
    choice = body.get("tool_choice", "auto")
    if isinstance(choice, dict) and choice.get("type") == "function":
        choice = {"type": "function", "function": {"name": choice.get("name")}}
    fmt = (body.get("text") or {}).get("format") if isinstance(body.get("text"), dict) else None
    response_format = None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        response_format = {"type": "json_schema", "json_schema": {"name": fmt.get("name"), "schema": fmt.get("schema")}}
    elif isinstance(fmt, dict) and fmt.get("type") == "json_object":
        response_format = {"type": "json_object"}
    return {"tools": tools, "tool_choice": choice, "response_format": response_format}


def responses_output(rid: str, reply: Answer) -> list[dict]:
    """The output items of a Responses answer: one message, or one function call."""
    if reply.tool_name:
        call_id = f"call_{rid[5:]}"
        return [{"type": "function_call", "id": f"fc_{rid[5:]}", "call_id": call_id, "name": reply.tool_name,
                 "arguments": reply.text, "status": "completed"}]
    return [{"type": "message", "id": f"msg_{rid[5:]}", "status": "completed", "role": "assistant",
             "content": [{"type": "output_text", "text": reply.text, "annotations": [], "logprobs": []}]}]


def responses_object(rid: str, model: str, body: dict, status: str, output: list, usage) -> dict:
    return {
        "id": rid, "object": "response", "created_at": int(time.time()), "status": status, "model": model,
        "output": output, "usage": usage, "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": body.get("instructions"), "metadata": {}, "parallel_tool_calls": True,
        "temperature": body.get("temperature"), "top_p": body.get("top_p"),
        "tool_choice": body.get("tool_choice", "auto"), "tools": body.get("tools") or [],
        "text": body.get("text") or {"format": {"type": "text"}}, "store": body.get("store", True),
    }


def anthropic_prompt(body: dict, messages: list[dict], max_tokens: int, stops: list[str]) -> Prompt:
    input_tokens = words(text_of(body.get("system") or "")) + sum(words(text_of(m.get("content"))) for m in messages)
    last = messages[-1]
    tool_result = None
    if last.get("role") == "user" and isinstance(last.get("content"), list):
        results = [b for b in last["content"] if isinstance(b, dict) and b.get("type") == "tool_result"]
        if results:
            tool_result = " ".join(text_of(b.get("content", "")) for b in results)
    last_text = next((text_of(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")

    json_mode, json_schema = structured_request(body, "anthropic")
    names = [t["name"] for t in body.get("tools") or [] if isinstance(t, dict) and isinstance(t.get("name"), str)]
    choice = body.get("tool_choice")
    kind = choice.get("type") if isinstance(choice, dict) else "auto"
    forced = None
    if kind == "tool":
        forced = choice.get("name")
    elif kind == "any" and names:
        forced = names[0]
    tool = choose_tool(names, forced, kind != "none", last_text, tool_result)
    return Prompt(
        input_tokens=input_tokens,
        last_text=last_text,
        tool_result=tool_result,
        tool=tool,
        max_tokens=max_tokens,
        stops=stops,
        json_mode=json_mode,
        json_schema=json_schema,
        tool_schema=tool_schemas(body, "anthropic").get(tool),
    )


def embedding(item) -> list[float]:
    """A unit vector derived from a hash of the input, rounded to float32 so both encodings agree."""
    key = item if isinstance(item, str) else json.dumps(item)
    raw = struct.unpack(f"<{EMBEDDING_DIMENSIONS}I", hashlib.sha256(key.encode()).digest())
    vector = [n / 2**31 - 1.0 for n in raw]
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    packed = struct.pack(f"<{EMBEDDING_DIMENSIONS}f", *(v / norm for v in vector))
    return list(struct.unpack(f"<{EMBEDDING_DIMENSIONS}f", packed))


# --------------------------------------------------------------------------- reasoning and caches

REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high")


def openai_reasoning_error(body: dict, dialect: str) -> str | None:
    """Why OpenAI would refuse a reasoning request: an unknown effort, or `max_tokens`, which
    its reasoning models reject in favour of `max_completion_tokens` (vLLM takes both)."""
    effort = body.get("reasoning_effort")
    if effort is None:
        return None
    if effort not in REASONING_EFFORTS:
        return f"Invalid value for 'reasoning_effort': {effort!r}. Supported values are: {', '.join(REASONING_EFFORTS)}."
    if dialect == "openai" and body.get("max_tokens") is not None:
        return "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead."
    return None


def openai_reasoning(body: dict, prompt: Prompt) -> str | None:
    """The `reasoning_content` of an answer to a request with a `reasoning_effort` that thinks."""
    effort = body.get("reasoning_effort")
    if effort in (None, "none", "minimal"):
        return None
    return " ".join([f"Reasoning ({effort}) about:", *prompt.last_text.split()[:MAX_ECHO_WORDS]])


def signature(thinking: str) -> str:
    """The mock's signature of a thinking text; a block sent back must carry it unchanged."""
    return "sig_" + hashlib.sha256(thinking.encode()).hexdigest()[:32]


def anthropic_thinking(body: dict, max_tokens: int, prompt: Prompt) -> tuple[str | None, str | None]:
    """(error, thinking text) for an Anthropic request: the checks the real API makes of
    `thinking` (budget of at least 1024 and below max_tokens, no forced tool choice; signed
    thinking blocks in history, first in a final assistant turn with tool use), and the text of
    the answer's thinking block when it is enabled."""
    messages = body.get("messages") or []
    for i, m in enumerate(messages):
        for j, b in enumerate(m.get("content") if isinstance(m.get("content"), list) else []):
            if isinstance(b, dict) and b.get("type") == "thinking" and b.get("signature") != signature(str(b.get("thinking", ""))):
                return f"messages.{i}.content.{j}: Invalid `signature` in `thinking` block", None
    config = body.get("thinking")
    if not isinstance(config, dict) or config.get("type") != "enabled":
        return None, None
    budget = config.get("budget_tokens")
    if not _is_int(budget) or budget < 1024:
        return "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024", None
    if budget >= max_tokens:
        return "`max_tokens` must be greater than `thinking.budget_tokens`", None
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") in ("any", "tool"):
        return "Thinking may not be enabled when tool_choice forces tool use.", None
    last = next((i for i in range(len(messages) - 1, -1, -1) if messages[i].get("role") == "assistant"), None)
    content = messages[last].get("content") if last is not None else None
    if isinstance(content, list) and any(isinstance(b, dict) and b.get("type") == "tool_use" for b in content):
        first = content[0].get("type") if isinstance(content[0], dict) else None
        if first not in ("thinking", "redacted_thinking"):
            return (
                f"messages.{last}.content.0.type: Expected `thinking` or `redacted_thinking`, but found `{first}`. "
                "When `thinking` is enabled, a final `assistant` message must start with a thinking block."
            ), None
    return None, " ".join(["Thinking about:", *prompt.last_text.split()[:MAX_ECHO_WORDS]])


def cached(config: dict, prompt_tokens: int) -> int:
    """Prompt tokens to report as read from the cache (the `cached_tokens` fault)."""
    return min(config.get("cached_tokens", 0), prompt_tokens)


# --------------------------------------------------------------------------- errors


def completion_prompts(prompt) -> list[str] | None:
    """The prompts of a legacy completion request as text (token ids as words), or None when
    `prompt` is not a string, an array of strings, a token array or an array of token arrays."""
    def tokens(value) -> bool:
        return isinstance(value, list) and bool(value) and all(_is_int(t) for t in value)

    if isinstance(prompt, str):
        return [prompt]
    if tokens(prompt):
        return [" ".join(str(t) for t in prompt)]
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) or tokens(p) for p in prompt):
        return [p if isinstance(p, str) else " ".join(str(t) for t in p) for p in prompt]
    return None


def token_ids(text: str) -> list[int]:
    """Stable made-up token ids, one per word (the mock's tokens)."""
    return [int.from_bytes(hashlib.sha256(w.encode()).digest()[:2], "big") for w in text.split()]


def openai_error_type(status: int) -> tuple[str, str | None]:
    """(type, code) of an OpenAI error body for an HTTP status."""
    if status == 429:
        return "requests", "rate_limit_exceeded"
    if status == 401:
        return "invalid_request_error", "invalid_api_key"
    if status >= 500:
        return "server_error", None
    return "invalid_request_error", None


ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def anthropic_error_type(status: int) -> str:
    return ANTHROPIC_ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


# --------------------------------------------------------------------------- faults

# Rate fields and the failure each causes, in precedence order.
RATE_FAULTS = {"rate_limit_rate": "rate_limit", "error_rate": "error", "malformed_rate": "malformed"}
# Rate fields that spoil a JSON-mode or schema answer (still a 200), drawn among those answers only.
ANSWER_FAULTS = {"invalid_json_rate": "invalid_json", "schema_mismatch_rate": "schema_mismatch"}
FAULT_FIELDS = frozenset(
    {
        *RATE_FAULTS,
        *ANSWER_FAULTS,
        "error_status",
        "retry_after",
        "latency_ms",
        "latency_ms_range",
        "ttft_ms",
        "ttft_ms_range",
        "inter_token_ms",
        "cut_stream_after",
        "stream_error_after",
        "body_delay_ms",
        "extra_output_words",
        "cached_tokens",
        "hang",
        "deterministic",
        "seed",
    }
)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_faults(config) -> dict:
    """Checks a fault configuration and returns it without null fields; raises ValueError."""
    if not isinstance(config, dict):
        raise ValueError("faults must be a JSON object")
    config = {k: v for k, v in config.items() if v is not None}
    unknown = sorted(set(config) - FAULT_FIELDS)
    if unknown:
        raise ValueError(f"unknown fault fields {unknown}; known: {sorted(FAULT_FIELDS)}")
    for name, value in config.items():
        if name in RATE_FAULTS or name in ANSWER_FAULTS:
            ok = _is_number(value) and 0 <= value <= 1
        elif name == "error_status":
            ok = _is_int(value) and 400 <= value <= 599
        elif name in ("retry_after", "latency_ms", "ttft_ms", "inter_token_ms", "body_delay_ms"):
            ok = _is_number(value) and value >= 0
        elif name.endswith("_range"):
            ok = (
                isinstance(value, list)
                and len(value) == 2
                and all(_is_number(v) for v in value)
                and 0 <= value[0] <= value[1]
            )
        elif name in ("cut_stream_after", "stream_error_after", "extra_output_words", "cached_tokens"):
            ok = _is_int(value) and value >= 0
        elif name in ("hang", "deterministic"):
            ok = isinstance(value, bool)
        else:  # seed
            ok = _is_int(value)
        if not ok:
            raise ValueError(f"invalid value for {name}: {value!r}")
    for name in ("latency", "ttft"):
        if f"{name}_ms" in config and f"{name}_ms_range" in config:
            raise ValueError(f"set either {name}_ms or {name}_ms_range, not both")
    for group in (RATE_FAULTS, ANSWER_FAULTS):
        if sum(config.get(name, 0) for name in group) > 1:
            raise ValueError(f"the rates {sorted(group)} must add up to at most 1")
    return config


class Faults:
    """The current fault configuration and the state that decides which requests fail."""

    def __init__(self, config=None):
        self._lock = threading.Lock()
        self.set(config or {})

    def set(self, config) -> dict:
        config = validate_faults(config)
        with self._lock:
            self._config = config
            self._rng = random.Random(config.get("seed"))
            # Deterministic mode: each rate adds to its credit per request; a full unit of credit
            # fails the request. Fractions keep e.g. 0.1 * 10 exactly 1.
            self._credit = dict.fromkeys([*RATE_FAULTS, *ANSWER_FAULTS], Fraction(0))
        return dict(config)

    def get(self) -> dict:
        with self._lock:
            return dict(self._config)

    def hanging(self) -> bool:
        with self._lock:
            return bool(self._config.get("hang"))

    def draw(self) -> tuple[dict, str | None]:
        """Returns the configuration for one request and its failure: rate_limit, error, malformed or None."""
        with self._lock:
            config = dict(self._config)
            return config, self._draw(config, RATE_FAULTS)

    def draw_answer(self) -> str | None:
        """How one JSON-mode or schema answer is spoiled: invalid_json, schema_mismatch or None."""
        with self._lock:
            return self._draw(self._config, ANSWER_FAULTS)

    def _draw(self, config: dict, group: dict) -> str | None:
        if config.get("deterministic"):
            for name in group:
                self._credit[name] += Fraction(config.get(name, 0)).limit_denominator(10**6)
            for name, kind in group.items():
                if self._credit[name] >= 1:
                    self._credit[name] -= 1
                    return kind
            return None
        # Random mode: the rates are consecutive slices of [0, 1).
        roll, edge = self._rng.random(), 0.0
        for name, kind in group.items():
            edge += config.get(name, 0)
            if roll < edge:
                return kind
        return None

    def delay(self, config: dict, name: str) -> float:
        """Seconds of the `latency` or `ttft` delay: fixed `<name>_ms` or uniform in `<name>_ms_range`."""
        if f"{name}_ms_range" in config:
            low, high = config[f"{name}_ms_range"]
            with self._lock:
                return self._rng.uniform(low, high) / 1000
        return config.get(f"{name}_ms", 0) / 1000


# --------------------------------------------------------------------------- counting


class _Record:
    """A request's entry in Stats, tagged with the reset generation it was counted in."""

    __slots__ = ("entry", "generation")

    def __init__(self, generation: int, entry: dict):
        self.generation, self.entry = generation, entry


class Stats:
    """Counts of the requests received (all but the /_mock/ control endpoints)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._generation = 0
        self._zero()

    def _zero(self):
        self.total = self.streaming = self.non_streaming = 0
        self.input_tokens = self.output_tokens = 0
        self.by_path, self.by_status, self.by_model, self.by_fault = Counter(), Counter(), Counter(), Counter()
        self.recent = deque(maxlen=RECENT_REQUESTS)

    def reset(self):
        with self._lock:
            # Requests still in flight belong to the old generation and no longer count.
            self._generation += 1
            self._zero()

    def begin(self, method: str, path: str, headers: dict, body, key_matched) -> _Record:
        model = body.get("model") if isinstance(body, dict) and isinstance(body.get("model"), str) else None
        stream = isinstance(body, dict) and body.get("stream") is True
        entry = {
            "time": time.time(),
            "method": method,
            "path": path,
            "model": model,
            "stream": stream,
            "status": None,
            "fault": None,
            "key_matched": key_matched,
            "headers": headers,
            "body": body,
        }
        with self._lock:
            self.total += 1
            self.by_path[path] += 1
            if model:
                self.by_model[model] += 1
            if stream:
                self.streaming += 1
            else:
                self.non_streaming += 1
            self.recent.append(entry)
            return _Record(self._generation, entry)

    def finish(self, record: _Record, status: int):
        with self._lock:
            record.entry["status"] = status
            if record.generation == self._generation:
                self.by_status[str(status)] += 1

    def fault(self, record: _Record, kind: str):
        with self._lock:
            record.entry["fault"] = kind
            if record.generation == self._generation:
                self.by_fault[kind] += 1

    def tokens(self, record: _Record, input_tokens: int, output_tokens: int):
        with self._lock:
            if record.generation == self._generation:
                self.input_tokens += input_tokens
                self.output_tokens += output_tokens

    def snapshot(self) -> dict:
        with self._lock:
            return {
                "total": self.total,
                "by_path": dict(self.by_path),
                "by_status": dict(self.by_status),
                "by_model": dict(self.by_model),
                "by_fault": dict(self.by_fault),
                "streaming": self.streaming,
                "non_streaming": self.non_streaming,
                "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens,
                "recent": [dict(entry) for entry in self.recent],
            }


class Histogram:
    def __init__(self, bounds: tuple[float, ...]):
        self.bounds = bounds
        self.reset()

    def reset(self):
        self.cumulative = [0] * len(self.bounds)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float):
        for i, bound in enumerate(self.bounds):
            if value <= bound:
                self.cumulative[i] += 1
        self.sum += value
        self.count += 1


def _prometheus_value(value) -> str:
    return repr(float(value))


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """vLLM's engine metrics, fed by chat completions; rendered on the vllm dialect's /metrics."""

    def __init__(self):
        self._lock = threading.Lock()
        self._gauges = Counter()
        self._ttft = Histogram(TTFT_BUCKETS)
        self._e2e = Histogram(E2E_BUCKETS)
        self.reset()

    def reset(self):
        """Zeroes the counters and histograms; the gauges keep tracking the requests in flight."""
        with self._lock:
            self._prompt_tokens = self._generation_tokens = 0
            self._success = Counter()
            self._ttft.reset()
            self._e2e.reset()

    @contextlib.contextmanager
    def gauge(self, name: str):
        """Counts the enclosed block in gauge `running` or `waiting`."""
        with self._lock:
            self._gauges[name] += 1
        try:
            yield
        finally:
            with self._lock:
                self._gauges[name] -= 1

    def finished(self, prompt_tokens: int, generation_tokens: int, reason: str, ttft: float, e2e: float):
        with self._lock:
            self._prompt_tokens += prompt_tokens
            self._generation_tokens += generation_tokens
            self._success[reason] += 1
            self._ttft.observe(ttft)
            self._e2e.observe(e2e)

    def render(self, model: str) -> str:
        label = f'model_name="{_label(model)}"'
        lines = []

        def family(name, kind, help_text):
            lines.extend((f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"))

        def histogram(name, help_text, hist):
            family(name, "histogram", help_text)
            for bound, count in zip(hist.bounds, hist.cumulative, strict=True):
                lines.append(f'{name}_bucket{{{label},le="{_prometheus_value(bound)}"}} {_prometheus_value(count)}')
            lines.append(f'{name}_bucket{{{label},le="+Inf"}} {_prometheus_value(hist.count)}')
            lines.append(f"{name}_count{{{label}}} {_prometheus_value(hist.count)}")
            lines.append(f"{name}_sum{{{label}}} {_prometheus_value(hist.sum)}")

        with self._lock:
            family("vllm:num_requests_running", "gauge", "Number of requests currently running on GPU.")
            lines.append(f"vllm:num_requests_running{{{label}}} {_prometheus_value(self._gauges['running'])}")
            family("vllm:num_requests_waiting", "gauge", "Number of requests waiting to be processed.")
            lines.append(f"vllm:num_requests_waiting{{{label}}} {_prometheus_value(self._gauges['waiting'])}")
            family("vllm:prompt_tokens_total", "counter", "Number of prefill tokens processed.")
            lines.append(f"vllm:prompt_tokens_total{{{label}}} {_prometheus_value(self._prompt_tokens)}")
            family("vllm:generation_tokens_total", "counter", "Number of generation tokens processed.")
            lines.append(f"vllm:generation_tokens_total{{{label}}} {_prometheus_value(self._generation_tokens)}")
            family("vllm:request_success_total", "counter", "Count of successfully processed requests.")
            for reason in sorted(set(self._success) | {"stop", "length"}):
                lines.append(
                    f'vllm:request_success_total{{{label},finished_reason="{reason}"}} '
                    f"{_prometheus_value(self._success[reason])}"
                )
            histogram("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", self._ttft)
            histogram(
                "vllm:e2e_request_latency_seconds", "Histogram of end to end request latency in seconds.", self._e2e
            )
        return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- HTTP


class _Abandon(Exception):
    """The request is dropped without an answer: the client left or the server is stopping."""


def masked(key):
    """A key as OpenAI's 401 echoes it: first eight and last four characters."""
    return key if len(key) <= 12 else f"{key[:8]}{'*' * (len(key) - 12)}{key[-4:]}"

class MockServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    # Handler threads may sit in a hang fault or in an idle keep-alive read; joining them in
    # server_close() would block shutdown.
    block_on_close = False

    def __init__(self, address, dialect: str, model: str, require_key: str | None, faults: dict | None, quiet: bool):
        if dialect not in DIALECTS:
            raise ValueError(f"unknown dialect {dialect!r}; choose one of {DIALECTS}")
        if ":" in address[0]:
            self.address_family = socket.AF_INET6  # read by TCPServer.__init__ to make the socket
        self.dialect = dialect
        self.model = model
        self.require_key = require_key
        self.faults = Faults(faults)
        self.stats = Stats()
        self.metrics = Metrics()
        self.quiet = quiet
        self.stopping = threading.Event()
        # Open connections, closed with the server: a stopped server is a deleted pod, and one
        # process serves many pods (pod_host.py) whose IPs the next pods may get.
        self.connections = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, Handler)

    def server_bind(self):
        # HTTPServer.server_bind resolves the host with socket.getfqdn(), which can stall for
        # seconds in a network namespace without DNS; the name is never used here.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def shutdown(self):
        """Stops serve_forever and releases requests held by hang or delay faults."""
        self.stopping.set()
        super().shutdown()

    def process_request(self, request, client_address):
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def server_close(self):
        """Closes the listening socket and every open connection, as a process's exit would;
        handler threads waiting for a keep-alive request see end of input and finish."""
        super().server_close()
        with self.connections_lock:
            connections = list(self.connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already gone


def _bearer(value: str | None) -> str | None:
    if value and value[:7].lower() == "bearer ":
        return value[7:].strip()
    return None


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every non-stream answer carries Content-Length
    server_version = "switchyard-mock-provider/1"
    server: MockServer

    def setup(self):
        super().setup()
        # Answers go out in several small writes (headers, body, stream events); with Nagle's
        # algorithm each would wait for the peer's (delayed) ACK of the previous one.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format, *args):
        if not self.server.quiet:
            super().log_message(format, *args)

    # ----------------------------------------------------------------- plumbing

    def _dispatch(self):
        self.record = None
        self.body_delay = 0.0  # set by _faulted for the answer of a provider request
        path = urlsplit(self.path).path
        raw = self._read_body()
        try:
            if path.startswith("/_mock/"):
                self._control(path, raw)
            else:
                self._provider(path, raw)
        except (_Abandon, BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    def _read_body(self) -> bytes | None:
        """The whole request body (Content-Length or chunked), or None when its framing is broken."""
        try:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                parts = []
                while size := int(self.rfile.readline(65537).split(b";")[0].strip(), 16):
                    parts.append(self.rfile.read(size))
                    self.rfile.readline()
                while self.rfile.readline(65537).strip():  # trailers, up to the blank line
                    pass
                return b"".join(parts)
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.close_connection = True  # unread bytes would be taken for the next request
            return None
        return self.rfile.read(length) if length > 0 else b""

    def _start_response(self, status: int, headers):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if request_id := self.headers.get("x-request-id"):
            self.send_header("x-request-id", request_id)
        if self.record:
            for name, value in self._rate_limit_headers():
                self.send_header(name, value)
            self.server.stats.finish(self.record, status)

    def _send(self, status: int, body: bytes = b"", content_type: str | None = None, headers=()):
        head = [("Content-Length", str(len(body)))]
        if content_type:
            head.append(("Content-Type", content_type))
        self._start_response(status, [*head, *headers])
        self.end_headers()
        if status == 200 and self.body_delay > 0:
            # A slow 2xx: the status line and headers are out, the body comes later.
            self.wfile.flush()
            self._sleep(self.body_delay)
        self.wfile.write(body)

    def _send_json(self, status: int, obj, headers=()):
        self._send(status, json.dumps(obj).encode(), JSON_CONTENT_TYPE, headers)

    def _error(self, status: int, message: str, param: str | None = None, headers=()):
        """An error in the dialect's shape."""
        if self.server.dialect == "anthropic":
            body = {"type": "error", "error": {"type": anthropic_error_type(status), "message": message}}
        else:
            kind, code = openai_error_type(status)
            body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
        self._send_json(status, body, headers)

    def _sleep(self, seconds: float):
        if seconds > 0 and self.server.stopping.wait(seconds):
            raise _Abandon()

    def _client_gone(self) -> bool:
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    # ----------------------------------------------------------------- control API

    def _control(self, path: str, raw: bytes | None):
        server, method = self.server, self.command
        if path == "/_mock/stats" and method == "GET":
            return self._send_json(200, server.stats.snapshot())
        if path == "/_mock/reset" and method == "POST":
            server.stats.reset()
            server.metrics.reset()
            return self._send_json(200, {"reset": True})
        if path == "/_mock/faults" and method == "GET":
            return self._send_json(200, server.faults.get())
        if path == "/_mock/faults" and method == "DELETE":
            return self._send_json(200, server.faults.set({}))
        if path == "/_mock/faults" and method == "POST":
            try:
                if raw is None:
                    raise ValueError("the request body could not be read")
                return self._send_json(200, server.faults.set(json.loads(raw or b"{}")))
            except ValueError as err:  # also json.JSONDecodeError
                return self._send_json(400, {"error": str(err)})
        return self._send_json(404, {"error": f"no control endpoint {method} {path}"})

    # ----------------------------------------------------------------- provider API

    def _provider(self, path: str, raw: bytes | None):
        server = self.server
        headers = {name.lower(): value for name, value in self.headers.items()}
        anthropic = server.dialect == "anthropic"
        presented = _bearer(headers.get("authorization"))
        if anthropic and "x-api-key" in headers:
            # Anthropic takes its key in x-api-key; newer SDKs send it as a bearer token instead.
            presented = headers["x-api-key"]
        key_matched = None if server.require_key is None else presented == server.require_key
        payload, parsed = None, True
        if raw:
            try:
                payload = json.loads(raw)
            except ValueError:
                payload, parsed = raw.decode("utf-8", "replace"), False
        redacted = {name: "***" if name in SECRET_HEADERS else value for name, value in headers.items()}
        self.record = server.stats.begin(self.command, path, redacted, payload, key_matched)

        methods = ROUTES[server.dialect].get(path)
        if methods is None:
            return self._error(404, f"Invalid URL ({self.command} {path})")
        if self.command not in methods:
            allow = [("Allow", ", ".join(methods))]
            return self._error(405, f"Method {self.command} not allowed on {path}", headers=allow)
        if path not in UNGUARDED:
            if key_matched is False:
                if anthropic:
                    message = "x-api-key header is required" if presented is None else "invalid x-api-key"
                else:
                    # As OpenAI does: the key's first and last characters, the rest masked.
                    message = ("You didn't provide an API key." if presented is None else
                               f"Incorrect API key provided: {masked(presented)}. You can find your API key "
                               "at https://platform.openai.com/account/api-keys.")
                return self._error(401, message)
            if anthropic and "anthropic-version" not in headers:
                return self._error(400, "anthropic-version: header is required")
            if raw is None:
                return self._error(400, "The request body could not be read.")
            if self.command == "POST" and (not parsed or not isinstance(payload, dict)):
                return self._error(400, "We could not parse the JSON body of your request.")
        getattr(self, methods[self.command])(payload)

    def _faulted(self, stream: bool):
        """Applies hang, latency and the failure drawn for this request.

        Returns the fault configuration in force (for the stream faults) and whether a fault
        has already answered the request.
        """
        server = self.server
        if server.faults.hanging():
            server.stats.fault(self.record, "hang")
            with server.metrics.gauge("waiting"):
                while server.faults.hanging():
                    if server.stopping.wait(HANG_POLL_SECONDS) or self._client_gone():
                        raise _Abandon()
        config, outcome = server.faults.draw()
        with server.metrics.gauge("waiting"):
            self._sleep(server.faults.delay(config, "latency"))
        if outcome is None:
            self.body_delay = server.faults.delay(config, "body_delay")
            return config, False
        server.stats.fault(self.record, outcome)
        if outcome == "rate_limit":
            retry_after = config.get("retry_after", 1)
            self._error(
                429,
                "Rate limit reached (injected fault). Please try again later.",
                headers=[("Retry-After", str(math.ceil(retry_after)))],
            )
        elif outcome == "error":
            self._error(config.get("error_status", 500), "Injected fault: the server had an error.")
        elif stream:
            self._start_response(200, [("Content-Type", SSE_CONTENT_TYPE), ("Connection", "close")])
            self.end_headers()
            # A bare data: line would be skipped by Anthropic clients, which only read named events.
            event = b"event: message_start\n" if self.server.dialect == "anthropic" else b""
            self.wfile.write(event + b'data: {"malformed": tru\n\n')
        else:
            self._send(200, b'{"id": "malformed", "object": ', JSON_CONTENT_TYPE)
        return config, True

    def _answer_fault(self, prompt: Prompt) -> str | None:
        """The answer fault drawn for a JSON-mode or schema request (counted in by_fault)."""
        if not prompt.json_mode or prompt.tool:
            return None
        fault = self.server.faults.draw_answer()
        if fault:
            self.server.stats.fault(self.record, fault)
        return fault

    def _stream(self, config: dict, preamble: list[bytes], content: list[bytes], closing: list[bytes]):
        """Writes an SSE answer with the stream faults of `config` applied.

        Returns when the first content event went out (monotonic time), or None when the
        stream was cut before its closing events.
        """
        self._start_response(
            200, [("Content-Type", SSE_CONTENT_TYPE), ("Cache-Control", "no-cache"), ("Connection", "close")]
        )
        self.end_headers()
        self._sleep(self.server.faults.delay(config, "ttft"))
        self.wfile.write(b"".join(preamble))
        first_token = time.monotonic()
        cut = config.get("cut_stream_after")
        fail = config.get("stream_error_after")
        limits = [n for n in (cut, fail) if n is not None]
        gap = config.get("inter_token_ms", 0) / 1000
        for i, event in enumerate(content[: min(limits)] if limits else content):
            if i:
                self._sleep(gap)
            self.wfile.write(event)
            if i == 0:
                first_token = time.monotonic()
        if fail is not None and (cut is None or fail <= cut):
            # The provider reports an error in the stream (status 200 already sent), then closes.
            self.server.stats.fault(self.record, "stream_error")
            self.wfile.write(self._stream_error())
            return None
        if cut is not None:
            # Closing the connection now ends the body without [DONE] / message_stop.
            self.server.stats.fault(self.record, "cut_stream")
            return None
        self.wfile.write(b"".join(closing))
        return first_token

    def _stream_error(self) -> bytes:
        """The error event a provider sends mid-stream: Anthropic's overloaded_error, or an
        OpenAI-style error object in a data line."""
        message = "Overloaded (injected fault)."
        if self.server.dialect == "anthropic":
            data = {"type": "error", "error": {"type": "overloaded_error", "message": message}}
            return b"event: error\ndata: " + json.dumps(data).encode() + b"\n\n"
        data = {"error": {"message": message, "type": "server_error", "param": None, "code": None}}
        return b"data: " + json.dumps(data).encode() + b"\n\n"

    # ----------------------------------------------------------------- OpenAI / vLLM

    def _chat(self, body: dict):
        server, started = self.server, time.monotonic()
        model = body.get("model")
        if model is None and server.dialect == "vllm":
            model = server.model  # vLLM answers with its served model when none is named
        if not isinstance(model, str) or not model:
            return self._error(400, "you must provide a model parameter", param="model")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            return self._error(400, "'messages' must be a non-empty array of message objects.", param="messages")
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        if max_tokens is not None and (not _is_int(max_tokens) or max_tokens < 1):
            return self._error(400, "max_tokens must be an integer of at least 1.", param="max_tokens")
        stop = body.get("stop")
        stops = [stop] if isinstance(stop, str) else stop or []
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            return self._error(400, "'stop' must be a string or an array of strings.", param="stop")
        refused = openai_reasoning_error(body, server.dialect)
        if refused:
            return self._error(400, refused, param="reasoning_effort")
        stream = body.get("stream") is True
        prompt = openai_prompt(body, messages, max_tokens, stops)

        config, answered = self._faulted(stream)
        if answered:
            return
        with server.metrics.gauge("running"):
            reply = answer(prompt, self._answer_fault(prompt), config.get("extra_output_words", 0))
            reasoning = openai_reasoning(body, prompt)
            thought = words(reasoning or "")
            server.stats.tokens(self.record, prompt.input_tokens, reply.output_tokens + thought)
            usage = {
                "prompt_tokens": prompt.input_tokens,
                "completion_tokens": reply.output_tokens + thought,
                "total_tokens": prompt.input_tokens + reply.output_tokens + thought,
            }
            if "cached_tokens" in config:
                usage["prompt_tokens_details"] = {"cached_tokens": cached(config, prompt.input_tokens)}
            if reasoning:
                usage["completion_tokens_details"] = {"reasoning_tokens": thought}
            completion_id, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
            call_id = f"call_{uuid.uuid4().hex[:24]}"
            finish = OPENAI_FINISH[reply.finish]
            if stream:
                first_token = self._openai_stream(
                    config, body, model, completion_id, created, call_id, reply, finish, usage, reasoning
                )
            else:
                if reply.tool_name:
                    message = {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": call_id,
                                "type": "function",
                                "function": {"name": reply.tool_name, "arguments": reply.text},
                            }
                        ],
                    }
                else:
                    message = {"role": "assistant", "content": reply.text}
                if reasoning:
                    message["reasoning_content"] = reasoning
                first_token = time.monotonic()
                self._send_json(
                    200,
                    {
                        "id": completion_id,
                        "object": "chat.completion",
                        "created": created,
                        "model": model,
                        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
                        "usage": usage,
                    },
                )
        if first_token is not None:
            server.metrics.finished(
                prompt.input_tokens,
                reply.output_tokens,
                "length" if reply.finish == "length" else "stop",
                first_token - started,
                time.monotonic() - started,
            )

    def _openai_stream(self, config, body, model, completion_id, created, call_id, reply, finish, usage, reasoning=None):
        include_usage = (body.get("stream_options") or {}).get("include_usage") is True

        def chunk(delta, finish_reason=None):
            """A chunk with one choice; its usage is null, as OpenAI sends when usage is requested."""
            return event([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}], None)

        def event(choices, chunk_usage):
            obj = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": choices,
            }
            if include_usage:
                obj["usage"] = chunk_usage
            return b"data: " + json.dumps(obj).encode() + b"\n\n"

        if reply.tool_name:
            head = {
                "index": 0,
                "id": call_id,
                "type": "function",
                "function": {"name": reply.tool_name, "arguments": ""},
            }
            preamble = [chunk({"role": "assistant", "content": None, "tool_calls": [head]})]
            content = [chunk({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}) for p in reply.chunks]
        else:
            preamble = [chunk({"role": "assistant", "content": ""})]
            content = [chunk({"content": p}) for p in reply.chunks]
        # Reasoning comes first, as vLLM's reasoning parsers stream it.
        content = [chunk({"reasoning_content": p}) for p in pieces(reasoning or "")] + content
        closing = [chunk({}, finish)]
        if include_usage:
            closing.append(event([], usage))
        closing.append(b"data: [DONE]\n\n")
        return self._stream(config, preamble, content, closing)

    def _embeddings(self, body: dict):
        model = body.get("model")
        if model is None and self.server.dialect == "vllm":
            model = self.server.model
        if not isinstance(model, str) or not model:
            return self._error(400, "you must provide a model parameter", param="model")
        inputs = body.get("input")
        if isinstance(inputs, str) or (isinstance(inputs, list) and inputs and all(_is_int(t) for t in inputs)):
            inputs = [inputs]  # a single string or a single token array
        if (
            not isinstance(inputs, list)
            or not inputs
            or not all(isinstance(i, str) or (isinstance(i, list) and all(_is_int(t) for t in i)) for i in inputs)
        ):
            return self._error(400, "'input' must be a string, an array of strings or token arrays.", param="input")
        encoding = body.get("encoding_format", "float")
        if encoding not in ("float", "base64"):
            return self._error(400, "'encoding_format' must be 'float' or 'base64'.", param="encoding_format")
        _, answered = self._faulted(False)
        if answered:
            return
        data, tokens = [], 0
        for index, item in enumerate(inputs):
            vector = embedding(item)
            tokens += words(item) if isinstance(item, str) else len(item)
            if encoding == "base64":  # little-endian float32, as the OpenAI SDK requests by default
                vector = b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": vector})
        self.server.stats.tokens(self.record, tokens, 0)
        self._send_json(
            200,
            {
                "object": "list",
                "data": data,
                "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )

    def _models(self, _body):
        _, answered = self._faulted(False)
        if answered:
            return
        model = {"id": self.server.model, "object": "model", "created": int(time.time())}
        if self.server.dialect == "vllm":
            model.update(owned_by="vllm", root=self.server.model, parent=None, max_model_len=8192)
        else:
            model["owned_by"] = "switchyard-mock"
        self._send_json(200, {"object": "list", "data": [model]})

    # ------------------------------------------------------------ OpenAI Responses API

    def _responses(self, body: dict):
        """OpenAI's Responses API, stateless as the mock keeps nothing: the input items are
        read as the chat messages they mean and answered like a chat, then shaped as a
        response object or its event sequence."""
        server, started = self.server, time.monotonic()
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return self._error(400, "Missing required parameter: 'model'.", param="model")
        if body.get("previous_response_id"):
            return self._error(
                404, f"Previous response with id '{body['previous_response_id']}' not found.",
                param="previous_response_id")
        messages, error = responses_messages(body)
        if error:
            return self._error(400, error, param="input")
        max_tokens = body.get("max_output_tokens")
        if max_tokens is not None and (not _is_int(max_tokens) or max_tokens < 16):
            return self._error(400, "max_output_tokens must be an integer of at least 16.", param="max_output_tokens")
        stream = body.get("stream") is True
        chat_like = responses_as_chat(body)
        prompt = openai_prompt(chat_like, messages, max_tokens, [])
        config, answered = self._faulted(stream)
        if answered:
            return
        with server.metrics.gauge("running"):
            reply = answer(prompt, self._answer_fault(prompt), config.get("extra_output_words", 0))
            server.stats.tokens(self.record, prompt.input_tokens, reply.output_tokens)
            rid = f"resp_{uuid.uuid4().hex[:24]}"
            items = responses_output(rid, reply)
            usage = {
                "input_tokens": prompt.input_tokens,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": reply.output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": prompt.input_tokens + reply.output_tokens,
            }
            final = responses_object(rid, model, body, "incomplete" if reply.finish == "length" else "completed",
                                     items, usage)
            if stream:
                first_token = self._responses_stream(config, rid, model, body, reply, items, final)
            else:
                first_token = time.monotonic()
                self._send_json(200, final)
        if first_token is not None:
            server.metrics.finished(prompt.input_tokens, reply.output_tokens,
                                    "length" if reply.finish == "length" else "stop",
                                    first_token - started, time.monotonic() - started)

    def _responses_stream(self, config, rid, model, body, reply, items, final):
        seq = iter(range(1_000_000))

        def event(kind, data):
            data = {"type": kind, "sequence_number": next(seq), **data}
            return f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()

        opening = responses_object(rid, model, body, "in_progress", [], None)
        preamble = [event("response.created", {"response": opening}),
                    event("response.in_progress", {"response": opening})]
        item = items[0]
        if item["type"] == "function_call":
            preamble.append(event("response.output_item.added",
                                  {"output_index": 0, "item": {**item, "arguments": "", "status": "in_progress"}}))
            content = [event("response.function_call_arguments.delta",
                             {"item_id": item["id"], "output_index": 0, "delta": p}) for p in reply.chunks]
            closing = [event("response.function_call_arguments.done",
                             {"item_id": item["id"], "output_index": 0, "arguments": item["arguments"]})]
        else:
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            preamble += [
                event("response.output_item.added", {"output_index": 0, "item": {
                    **item, "status": "in_progress", "content": []}}),
                event("response.content_part.added", {"item_id": item["id"], "output_index": 0,
                                                      "content_index": 0, "part": part}),
            ]
            content = [event("response.output_text.delta", {"item_id": item["id"], "output_index": 0,
                                                            "content_index": 0, "delta": p, "logprobs": []})
                       for p in reply.chunks]
            text = item["content"][0]["text"]
            closing = [
                event("response.output_text.done", {"item_id": item["id"], "output_index": 0, "content_index": 0,
                                                    "text": text, "logprobs": []}),
                event("response.content_part.done", {"item_id": item["id"], "output_index": 0, "content_index": 0,
                                                     "part": {**part, "text": text}}),
            ]
        closing += [event("response.output_item.done", {"output_index": 0, "item": item}),
                    event(f"response.{final['status']}", {"response": final})]
        return self._stream(config, preamble, content, closing)

    def _health(self, _body):
        self._send(200)

    def _metrics(self, _body):
        body = self.server.metrics.render(self.server.model).encode()
        self._send(200, body, "text/plain; version=0.0.4; charset=utf-8")

    # ----------------------------------------------------------------- Anthropic

    def _messages(self, body: dict):
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return self._error(400, "model: Field required")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            return self._error(400, "messages: Field required")
        max_tokens = body.get("max_tokens")
        if max_tokens is None:
            return self._error(400, "max_tokens: Field required")
        if not _is_int(max_tokens) or max_tokens < 1:
            return self._error(400, "max_tokens: Input should be greater than or equal to 1")
        stops = body.get("stop_sequences") or []
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            return self._error(400, "stop_sequences: Input should be a valid list of strings")
        stream = body.get("stream") is True
        prompt = anthropic_prompt(body, messages, max_tokens, stops)
        refused, thinking = anthropic_thinking(body, max_tokens, prompt)
        if refused:
            return self._error(400, refused)

        config, answered = self._faulted(stream)
        if answered:
            return
        reply = answer(prompt, self._answer_fault(prompt), config.get("extra_output_words", 0))
        thought = words(thinking or "")
        self.server.stats.tokens(self.record, prompt.input_tokens, reply.output_tokens + thought)
        message_id, tool_id = f"msg_{uuid.uuid4().hex[:24]}", f"toolu_{uuid.uuid4().hex[:24]}"
        stop_reason = ANTHROPIC_STOP[reply.finish]
        # Anthropic's input_tokens leaves out what was read from the cache.
        read = cached(config, prompt.input_tokens)
        usage = {"input_tokens": prompt.input_tokens - read, "output_tokens": reply.output_tokens + thought}
        if "cached_tokens" in config:
            usage.update(cache_read_input_tokens=read, cache_creation_input_tokens=0)
        if stream:
            return self._anthropic_stream(config, model, message_id, tool_id, prompt, reply, stop_reason, thinking, usage)
        if reply.tool_name:
            block = {"type": "tool_use", "id": tool_id, "name": reply.tool_name, "input": reply.tool_input}
        else:
            block = {"type": "text", "text": reply.text}
        blocks = [block]
        if thinking:
            blocks.insert(0, {"type": "thinking", "thinking": thinking, "signature": signature(thinking)})
        self._send_json(
            200,
            {
                "id": message_id,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": blocks,
                "stop_reason": stop_reason,
                "stop_sequence": reply.stop_sequence,
                "usage": usage,
            },
        )

    def _anthropic_stream(self, config, model, message_id, tool_id, prompt, reply, stop_reason, thinking=None, usage=None):
        def event(name, data):
            return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n".encode()

        # With thinking, its block comes first and the answer's block is the second.
        at = 1 if thinking else 0
        start_usage = {**(usage or {"input_tokens": prompt.input_tokens}), "output_tokens": 1}

        message = {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": start_usage,
        }
        if reply.tool_name:
            block = {"type": "tool_use", "id": tool_id, "name": reply.tool_name, "input": {}}
            content = [
                event("content_block_delta", {"index": at, "delta": {"type": "input_json_delta", "partial_json": p}})
                for p in reply.chunks
            ]
        else:
            block = {"type": "text", "text": ""}
            content = [
                event("content_block_delta", {"index": at, "delta": {"type": "text_delta", "text": p}})
                for p in reply.chunks
            ]
        preamble = [event("message_start", {"message": message})]
        if thinking:
            preamble += [
                event("content_block_start", {"index": 0, "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
                *(
                    event("content_block_delta", {"index": 0, "delta": {"type": "thinking_delta", "thinking": p}})
                    for p in pieces(thinking)
                ),
                event("content_block_delta", {"index": 0, "delta": {"type": "signature_delta", "signature": signature(thinking)}}),
                event("content_block_stop", {"index": 0}),
            ]
        preamble += [event("content_block_start", {"index": at, "content_block": block}), event("ping", {})]
        closing = [
            event("content_block_stop", {"index": at}),
            event(
                "message_delta",
                {
                    "delta": {"stop_reason": stop_reason, "stop_sequence": reply.stop_sequence},
                    "usage": {"output_tokens": (usage or {}).get("output_tokens", reply.output_tokens)},
                },
            ),
            event("message_stop", {}),
        ]
        self._stream(config, preamble, content, closing)

    def _anthropic_models(self, _body):
        _, answered = self._faulted(False)
        if answered:
            return
        model = self.server.model
        entry = {"type": "model", "id": model, "display_name": model, "created_at": "2024-10-22T00:00:00Z"}
        self._send_json(200, {"data": [entry], "has_more": False, "first_id": model, "last_id": model})

    # ----------------------------------------------------------------- legacy completions, counts

    def _rate_limit_headers(self) -> list[tuple[str, str]]:
        """The rate-limit state a hosted provider reports on every answer (vLLM reports none):
        the requests left of this minute's allowance, counting every request since the reset."""
        remaining = str(max(RATE_LIMIT_REQUESTS - self.server.stats.total, 0))
        if self.server.dialect == "openai":
            return [
                ("x-ratelimit-limit-requests", str(RATE_LIMIT_REQUESTS)),
                ("x-ratelimit-remaining-requests", remaining),
                ("x-ratelimit-reset-requests", "6ms"),
            ]
        if self.server.dialect == "anthropic":
            reset = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 60))
            return [
                ("anthropic-ratelimit-requests-limit", str(RATE_LIMIT_REQUESTS)),
                ("anthropic-ratelimit-requests-remaining", remaining),
                ("anthropic-ratelimit-requests-reset", reset),
            ]
        return []

    def _completions(self, body: dict):
        """Legacy text completions: one choice per prompt, each answered as chat answers the
        prompt's text (an echo); streamed as `text_completion` chunks."""
        server, started = self.server, time.monotonic()
        model = body.get("model")
        if model is None and server.dialect == "vllm":
            model = server.model
        if not isinstance(model, str) or not model:
            return self._error(400, "you must provide a model parameter", param="model")
        prompts = completion_prompts(body.get("prompt"))
        if prompts is None:
            return self._error(
                400, "'prompt' must be a string, an array of strings, a token array or an array of token arrays.",
                param="prompt",
            )
        max_tokens = body.get("max_tokens")
        if max_tokens is None:
            max_tokens = COMPLETION_MAX_TOKENS
        if not _is_int(max_tokens) or max_tokens < 1:
            return self._error(400, "max_tokens must be an integer of at least 1.", param="max_tokens")
        stop = body.get("stop")
        stops = [stop] if isinstance(stop, str) else stop or []
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            return self._error(400, "'stop' must be a string or an array of strings.", param="stop")
        stream = body.get("stream") is True
        config, answered = self._faulted(stream)
        if answered:
            return
        extra = config.get("extra_output_words", 0)
        replies = [
            answer(Prompt(input_tokens=words(p), last_text=p, max_tokens=max_tokens, stops=stops), None, extra)
            for p in prompts
        ]
        input_tokens = sum(words(p) for p in prompts)
        output_tokens = sum(r.output_tokens for r in replies)
        server.stats.tokens(self.record, input_tokens, output_tokens)
        usage = {"prompt_tokens": input_tokens, "completion_tokens": output_tokens,
                 "total_tokens": input_tokens + output_tokens}
        completion_id, created = f"cmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        with server.metrics.gauge("running"):
            if stream:
                first_token = self._completion_stream(config, body, model, completion_id, created, replies, usage)
            else:
                choices = [
                    {"text": r.text, "index": i, "logprobs": None, "finish_reason": OPENAI_FINISH[r.finish]}
                    for i, r in enumerate(replies)
                ]
                first_token = time.monotonic()
                self._send_json(200, {"id": completion_id, "object": "text_completion", "created": created,
                                      "model": model, "choices": choices, "usage": usage})
        if first_token is not None:
            server.metrics.finished(
                input_tokens, output_tokens,
                "length" if any(r.finish == "length" for r in replies) else "stop",
                first_token - started, time.monotonic() - started,
            )

    def _completion_stream(self, config, body, model, completion_id, created, replies, usage):
        include_usage = (body.get("stream_options") or {}).get("include_usage") is True

        def event(choices, chunk_usage=None):
            obj = {"id": completion_id, "object": "text_completion", "created": created, "model": model,
                   "choices": choices}
            if include_usage:
                obj["usage"] = chunk_usage
            return b"data: " + json.dumps(obj).encode() + b"\n\n"

        def choice(index, text, finish=None):
            return {"text": text, "index": index, "logprobs": None, "finish_reason": finish}

        content = [event([choice(i, p)]) for i, r in enumerate(replies) for p in r.chunks]
        closing = [event([choice(i, "", OPENAI_FINISH[r.finish])]) for i, r in enumerate(replies)]
        if include_usage:
            closing.append(event([], usage))
        closing.append(b"data: [DONE]\n\n")
        return self._stream(config, [], content, closing)

    def _count_tokens(self, body: dict):
        """Anthropic's token count: the input tokens /v1/messages would report for the same
        system prompt and messages."""
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return self._error(400, "model: Field required")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            return self._error(400, "messages: Field required")
        _, answered = self._faulted(False)
        if answered:
            return
        count = words(text_of(body.get("system") or "")) + sum(words(text_of(m.get("content"))) for m in messages)
        self._send_json(200, {"input_tokens": count})

    def _tokenize(self, body: dict):
        """vLLM's tokenizer: chat `messages` (the input tokens a chat completion would report)
        or a `prompt`; answers the count, the token ids and the model's context length."""
        model = body.get("model", self.server.model)
        if not isinstance(model, str) or not model:
            return self._error(400, "'model' must be a string", param="model")
        messages, prompt = body.get("messages"), body.get("prompt")
        if isinstance(messages, list) and messages and all(isinstance(m, dict) for m in messages):
            text = " ".join(text_of(m.get("content")) for m in messages)
        elif isinstance(prompt, str):
            text = prompt
        else:
            return self._error(400, "either 'messages' (a non-empty array) or 'prompt' (a string) is required")
        tokens = token_ids(text)
        self._send_json(200, {"count": len(tokens), "max_model_len": VLLM_MAX_MODEL_LEN, "tokens": tokens})


# --------------------------------------------------------------------------- entry points


def serve(
    dialect: str,
    host: str,
    port: int,
    model: str | None = None,
    *,
    require_key: str | None = None,
    faults: dict | None = None,
    quiet: bool = False,
    tls: tuple[str, str] | None = None,
) -> tuple[MockServer, threading.Thread]:
    """Starts a mock provider on a background thread and returns (server, thread).

    `port` 0 picks a free port (see ``server.server_address``). Stop it with
    ``server.shutdown(); server.server_close()``. Raises ValueError for a bad dialect or faults.
    """
    server = MockServer((host, port), dialect, model or DEFAULT_MODELS.get(dialect, ""), require_key, faults, quiet)
    if tls:
        # `tls` is (certificate chain, key) PEM files. Handshakes run in each connection's
        # handler thread (on its first read), so a client refusing the certificate never
        # stalls the accept loop.
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*tls)
        server.socket = ctx.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"mock-{dialect}", daemon=True
    )
    thread.start()
    return server, thread


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Mock LLM provider for Switchyard's tests.")
    parser.add_argument("--dialect", required=True, choices=DIALECTS)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--model", help="model listed by /v1/models and labelled in /metrics")
    parser.add_argument("--port-file", help="write the port chosen to this file")
    parser.add_argument("--require-key", help="answer 401 unless requests carry this API key")
    parser.add_argument("--faults", help="initial fault configuration, as JSON (see /_mock/faults)")
    parser.add_argument("--quiet", action="store_true", help="do not log requests to stderr")
    parser.add_argument("--tls-cert", help="serve https with this PEM certificate (chain)")
    parser.add_argument("--tls-key", help="the certificate's PEM private key")
    args = parser.parse_args(argv)

    # Block the stop signals before any thread starts so every thread inherits the mask and
    # sigwait() below receives them.
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    try:
        faults = json.loads(args.faults) if args.faults else None
        server, thread = serve(
            args.dialect,
            args.host,
            args.port,
            args.model,
            require_key=args.require_key,
            faults=faults,
            quiet=args.quiet,
            tls=(args.tls_cert, args.tls_key) if args.tls_cert else None,
        )
    except ValueError as err:  # bad --faults JSON or fields
        parser.error(f"--faults: {err}")
    except OSError as err:
        print(f"cannot listen on {args.host}:{args.port}: {err}", file=sys.stderr)
        return 1
    host, port = server.server_address[:2]
    if args.port_file:
        # Written whole and renamed, so a poller never reads a partial port.
        tmp = f"{args.port_file}.tmp"
        with open(tmp, "w") as f:
            f.write(f"{port}\n")
        os.replace(tmp, args.port_file)
    scheme = "https" if args.tls_cert else "http"
    print(f"listening on {scheme}://{f'[{host}]' if ':' in host else host}:{port}", flush=True)
    signal.sigwait(stop_signals)
    server.shutdown()
    server.server_close()
    thread.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
