//! Non-streaming response bodies: Anthropic `message` <-> OpenAI `chat.completion`, and token
//! usage extraction for metrics.
//!
//! These never fail: a backend's response is whatever it is, and a missing field becomes a
//! neutral value (empty content, zero tokens) rather than an error the caller cannot act on.

use serde_json::{Map, Value, json};

use super::reasoning::{self, Thinking};
use super::structured::is_answer_tool;

/// Tokens consumed by one request, as counted by the backend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens, including tokens read from or written to a prompt cache.
    pub input: u64,
    /// The part of `input` read from a prompt cache (priced apart by most providers).
    pub cached: u64,
    pub output: u64,
}

/// An Anthropic `message` as an OpenAI `chat.completion`. `model` is the name the caller asked
/// for (not the backend's), `created` the Unix time to report.
///
/// A call of the structured-answer tool (see `structured`) is the answer: its input becomes
/// the `content` (any prose beside it is dropped, so the content parses as the caller's
/// schema) and the answer finishes with `stop` unless other tools were called. Thinking
/// blocks become `reasoning_content` and `thinking_blocks` (see `reasoning`).
pub fn anthropic_to_openai(resp: &Value, model: &str, created: i64) -> Value {
    let mut text = String::new();
    let mut has_text = false;
    let mut calls = Vec::new();
    let mut answer: Option<String> = None;
    let mut thinking = Thinking::default();
    for block in resp["content"].as_array().into_iter().flatten() {
        if thinking.take(block) {
            continue;
        }
        match block["type"].as_str() {
            Some("text") => {
                has_text = true;
                text.push_str(block["text"].as_str().unwrap_or_default());
            }
            Some("tool_use") => {
                let input = match &block["input"] {
                    Value::Null => json!({}),
                    v => v.clone(),
                };
                if is_answer_tool(block["name"].as_str().unwrap_or_default()) {
                    answer = Some(input.to_string());
                    continue;
                }
                calls.push(json!({
                    "id": block["id"].as_str().unwrap_or_default(),
                    "type": "function",
                    "function": {
                        "name": block["name"].as_str().unwrap_or_default(),
                        "arguments": input.to_string()
                    }
                }));
            }
            // Server-tool blocks have no place in a chat completion.
            _ => {}
        }
    }
    let mut message = Map::new();
    message.insert("role".into(), json!("assistant"));
    let answered = answer.is_some();
    let content = match answer {
        Some(json) => Value::String(json),
        None if !has_text && !calls.is_empty() => Value::Null,
        None => Value::String(text),
    };
    message.insert("content".into(), content);
    message.insert("refusal".into(), Value::Null);
    thinking.insert_into(&mut message);
    let no_calls = calls.is_empty();
    if !calls.is_empty() {
        message.insert("tool_calls".into(), Value::Array(calls));
    }
    let mut finish = finish_reason(resp["stop_reason"].as_str());
    if answered && no_calls && finish == "tool_calls" {
        finish = "stop";
    }
    let mut out = json!({
        "id": format!("chatcmpl-{}", resp["id"].as_str().unwrap_or_default()),
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish
        }]
    });
    if let Some(u) = resp.get("usage").filter(|u| u.is_object()) {
        out["usage"] = openai_usage(u);
    }
    out
}

/// An OpenAI `chat.completion` as an Anthropic `message`. Only the first choice is used (the
/// request translator refuses `n > 1`). `model` is the name the caller asked for.
pub fn openai_to_anthropic(resp: &Value, model: &str) -> Value {
    let choice = &resp["choices"][0];
    let message = &choice["message"];
    let mut content = Vec::new();
    if let Some(r) = reasoning::openai_reasoning(message) {
        content.push(reasoning::thinking_block(r));
    }
    let mut text = openai_message_text(&message["content"]);
    if text.is_empty()
        && let Some(r) = message["refusal"].as_str()
    {
        text = r.to_owned();
    }
    if !text.is_empty() {
        content.push(json!({"type": "text", "text": text}));
    }
    for (i, call) in message["tool_calls"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let id = call["id"]
            .as_str()
            .map_or_else(|| format!("toolu_{i}"), str::to_owned);
        content.push(tool_use(&id, &call["function"]));
    }
    if message["function_call"].is_object() {
        content.push(tool_use("toolu_legacy", &message["function_call"]));
    }
    json!({
        "id": format!("msg_{}", resp["id"].as_str().unwrap_or_default()),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(choice["finish_reason"].as_str()),
        "stop_sequence": null,
        "usage": anthropic_usage(&usage_openai(resp).unwrap_or_default())
    })
}

/// Anthropic `usage` for tokens counted by an OpenAI backend. Anthropic's `input_tokens`
/// leaves out the prompt tokens read from the cache, which `cache_read_input_tokens` counts.
pub(crate) fn anthropic_usage(u: &Usage) -> Value {
    let cached = u.cached.min(u.input);
    let mut out = json!({"input_tokens": u.input - cached, "output_tokens": u.output});
    if cached > 0 {
        out["cache_read_input_tokens"] = cached.into();
    }
    out
}

/// Usage of an OpenAI response body, stream chunk or `usage` object. `prompt_tokens`
/// includes the cached tokens that `prompt_tokens_details.cached_tokens` counts.
pub fn usage_openai(v: &Value) -> Option<Usage> {
    let u = if v["usage"].is_object() {
        &v["usage"]
    } else {
        v
    };
    let input = u["prompt_tokens"].as_u64();
    let output = u["completion_tokens"].as_u64();
    if input.is_none() && output.is_none() {
        return None;
    }
    Some(Usage {
        input: input.unwrap_or(0),
        cached: u["prompt_tokens_details"]["cached_tokens"]
            .as_u64()
            .unwrap_or(0),
        output: output.unwrap_or(0),
    })
}

/// Usage of an Anthropic response body, `message_start` or `message_delta` event, or `usage`
/// object. Input counts cache reads and writes, which Anthropic reports separately; cached
/// counts the reads.
pub fn usage_anthropic(v: &Value) -> Option<Usage> {
    let u = if v["usage"].is_object() {
        &v["usage"]
    } else if v["message"]["usage"].is_object() {
        &v["message"]["usage"]
    } else {
        v
    };
    let count = |f: &str| u[f].as_u64();
    let (plain, read, written) = (
        count("input_tokens"),
        count("cache_read_input_tokens"),
        count("cache_creation_input_tokens"),
    );
    let output = count("output_tokens");
    if plain.is_none() && read.is_none() && written.is_none() && output.is_none() {
        return None;
    }
    let read = read.unwrap_or(0);
    Some(Usage {
        input: plain.unwrap_or(0) + read + written.unwrap_or(0),
        cached: read,
        output: output.unwrap_or(0),
    })
}

/// OpenAI `finish_reason` for an Anthropic `stop_reason`.
pub(crate) fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        // end_turn, stop_sequence, pause_turn and anything new.
        _ => "stop",
    }
}

/// Anthropic `stop_reason` for an OpenAI `finish_reason`.
pub(crate) fn stop_reason(finish_reason: Option<&str>) -> &'static str {
    match finish_reason {
        Some("length") => "max_tokens",
        Some("tool_calls" | "function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

/// OpenAI `usage` for an Anthropic `usage` object.
pub(crate) fn openai_usage(u: &Value) -> Value {
    let cached = u["cache_read_input_tokens"].as_u64().unwrap_or(0);
    let input = u["input_tokens"].as_u64().unwrap_or(0)
        + cached
        + u["cache_creation_input_tokens"].as_u64().unwrap_or(0);
    let output = u["output_tokens"].as_u64().unwrap_or(0);
    json!({
        "prompt_tokens": input,
        "completion_tokens": output,
        "total_tokens": input + output,
        "prompt_tokens_details": {"cached_tokens": cached}
    })
}

/// Text of an OpenAI response message's content: a string or (from some backends) an array of
/// text parts.
fn openai_message_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect(),
        _ => String::new(),
    }
}

/// A `tool_use` block for an OpenAI function call. Arguments that are not a JSON object become
/// `{}`: the response already happened, and a block without valid input is still more useful
/// to the caller than no response.
fn tool_use(id: &str, function: &Value) -> Value {
    let input = function["arguments"]
        .as_str()
        .and_then(|a| serde_json::from_str::<Value>(a).ok())
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    json!({
        "type": "tool_use",
        "id": id,
        "name": function["name"].as_str().unwrap_or_default(),
        "input": input
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anthropic_message() -> Value {
        json!({
            "id": "msg_01ABC",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "text", "text": "Let me check "},
                {"type": "text", "text": "the weather."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
            ],
            "stop_reason": "tool_use",
            "stop_sequence": null,
            "usage": {
                "input_tokens": 100,
                "cache_read_input_tokens": 20,
                "cache_creation_input_tokens": 5,
                "output_tokens": 30
            }
        })
    }

    #[test]
    fn anthropic_message_to_chat_completion() {
        let out = anthropic_to_openai(&anthropic_message(), "my-model", 1_700_000_000);
        assert_eq!(out["id"], "chatcmpl-msg_01ABC");
        assert_eq!(out["object"], "chat.completion");
        assert_eq!(out["created"], 1_700_000_000);
        assert_eq!(out["model"], "my-model");
        let choice = &out["choices"][0];
        assert_eq!(choice["index"], 0);
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert_eq!(choice["message"]["role"], "assistant");
        assert_eq!(choice["message"]["content"], "Let me check the weather.");
        assert_eq!(
            choice["message"]["tool_calls"],
            json!([{
                "id": "toolu_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}
            }])
        );
        assert_eq!(out["usage"]["prompt_tokens"], 125);
        assert_eq!(out["usage"]["completion_tokens"], 30);
        assert_eq!(out["usage"]["total_tokens"], 155);
        assert_eq!(out["usage"]["prompt_tokens_details"]["cached_tokens"], 20);
    }

    #[test]
    fn tool_calls_only_have_null_content() {
        let resp = json!({
            "id": "msg_2",
            "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 1, "output_tokens": 2}
        });
        let out = anthropic_to_openai(&resp, "m", 0);
        assert_eq!(out["choices"][0]["message"]["content"], Value::Null);
        assert_eq!(
            out["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
            "{}"
        );
    }

    #[test]
    fn text_only_has_no_tool_calls_key() {
        let resp = json!({"id": "m", "content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn"});
        let out = anthropic_to_openai(&resp, "m", 0);
        let msg = out["choices"][0]["message"].as_object().unwrap();
        assert!(!msg.contains_key("tool_calls"));
        assert_eq!(msg["content"], "hi");
        assert!(out.get("usage").is_none());
    }

    #[test]
    fn stop_reason_mappings() {
        let cases = [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("max_tokens", "length"),
            ("tool_use", "tool_calls"),
            ("refusal", "content_filter"),
            ("pause_turn", "stop"),
        ];
        for (anthropic, openai) in cases {
            let resp = json!({"id": "x", "content": [], "stop_reason": anthropic});
            assert_eq!(
                anthropic_to_openai(&resp, "m", 0)["choices"][0]["finish_reason"],
                openai,
                "{anthropic}"
            );
        }
        let cases = [
            ("stop", "end_turn"),
            ("length", "max_tokens"),
            ("tool_calls", "tool_use"),
            ("function_call", "tool_use"),
            ("content_filter", "refusal"),
        ];
        for (openai, anthropic) in cases {
            let resp = json!({"id": "x", "choices": [{"message": {"content": "a"}, "finish_reason": openai}]});
            assert_eq!(
                openai_to_anthropic(&resp, "m")["stop_reason"],
                anthropic,
                "{openai}"
            );
        }
    }

    fn openai_completion() -> Value {
        json!({
            "id": "chatcmpl-XYZ",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-4o",
            "choices": [{
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Checking.",
                    "tool_calls": [
                        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                        {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "not json"}}
                    ]
                },
                "finish_reason": "tool_calls"
            }],
            "usage": {"prompt_tokens": 50, "completion_tokens": 12, "total_tokens": 62}
        })
    }

    #[test]
    fn chat_completion_to_anthropic_message() {
        let out = openai_to_anthropic(&openai_completion(), "claude-alias");
        assert_eq!(
            out,
            json!({
                "id": "msg_chatcmpl-XYZ",
                "type": "message",
                "role": "assistant",
                "model": "claude-alias",
                "content": [
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "call_2", "name": "get_time", "input": {}}
                ],
                "stop_reason": "tool_use",
                "stop_sequence": null,
                "usage": {"input_tokens": 50, "output_tokens": 12}
            })
        );
    }

    #[test]
    fn empty_and_refusal_content() {
        let resp = json!({"id": "a", "choices": [{"message": {"content": null, "refusal": "I can't."}, "finish_reason": "stop"}]});
        let out = openai_to_anthropic(&resp, "m");
        assert_eq!(
            out["content"],
            json!([{"type": "text", "text": "I can't."}])
        );
        assert_eq!(out["usage"], json!({"input_tokens": 0, "output_tokens": 0}));

        let resp = json!({"id": "a", "choices": [{"message": {"content": ""}, "finish_reason": "length"}]});
        let out = openai_to_anthropic(&resp, "m");
        assert_eq!(out["content"], json!([]));
        assert_eq!(out["stop_reason"], "max_tokens");
    }

    #[test]
    fn legacy_function_call_response() {
        let resp = json!({"id": "a", "choices": [{"message": {"content": null, "function_call": {"name": "f", "arguments": "{\"x\":1}"}}, "finish_reason": "function_call"}]});
        let out = openai_to_anthropic(&resp, "m");
        assert_eq!(
            out["content"],
            json!([{"type": "tool_use", "id": "toolu_legacy", "name": "f", "input": {"x": 1}}])
        );
    }

    #[test]
    fn round_trip_preserves_text_tools_and_usage() {
        let back = openai_to_anthropic(&anthropic_to_openai(&anthropic_message(), "m", 0), "m");
        // The thinking text survives; its signature does not cross an OpenAI answer.
        assert_eq!(
            back["content"][0],
            json!({"type": "thinking", "thinking": "hmm", "signature": ""})
        );
        assert_eq!(
            back["content"][1],
            json!({"type": "text", "text": "Let me check the weather."})
        );
        assert_eq!(back["content"][2]["input"], json!({"city": "Paris"}));
        assert_eq!(back["content"][2]["id"], "toolu_1");
        assert_eq!(back["stop_reason"], "tool_use");
        // Cache writes count as plain input once they are OpenAI prompt tokens.
        assert_eq!(back["usage"]["input_tokens"], 105);
        assert_eq!(back["usage"]["cache_read_input_tokens"], 20);
        assert_eq!(back["usage"]["output_tokens"], 30);
    }

    #[test]
    fn usage_extraction() {
        assert_eq!(
            usage_openai(&openai_completion()),
            Some(Usage {
                input: 50,
                cached: 0,
                output: 12
            })
        );
        assert_eq!(
            usage_openai(&json!({"prompt_tokens": 3, "completion_tokens": 4})),
            Some(Usage {
                input: 3,
                cached: 0,
                output: 4
            })
        );
        assert_eq!(usage_openai(&json!({"usage": null, "choices": []})), None);
        assert_eq!(
            usage_anthropic(&anthropic_message()),
            Some(Usage {
                input: 125,
                cached: 20,
                output: 30
            })
        );
        let start = json!({"type": "message_start", "message": {"usage": {"input_tokens": 9, "output_tokens": 1}}});
        assert_eq!(
            usage_anthropic(&start),
            Some(Usage {
                input: 9,
                cached: 0,
                output: 1
            })
        );
        let delta = json!({"type": "message_delta", "usage": {"output_tokens": 42}});
        assert_eq!(
            usage_anthropic(&delta),
            Some(Usage {
                input: 0,
                cached: 0,
                output: 42
            })
        );
        assert_eq!(usage_anthropic(&json!({"type": "ping"})), None);
    }
}
