//! Request translation both ways, and round trips.

mod from_anthropic;
mod from_openai;

use super::*;

pub(super) fn o2a(req: Value) -> Value {
    openai_to_anthropic(&req, "claude-backend").unwrap()
}

pub(super) fn o2a_err(req: Value) -> String {
    openai_to_anthropic(&req, "claude-backend")
        .unwrap_err()
        .to_string()
}

pub(super) fn a2o(req: Value) -> Value {
    anthropic_to_openai(&req, "gpt-backend").unwrap()
}

pub(super) fn a2o_err(req: Value) -> String {
    anthropic_to_openai(&req, "gpt-backend")
        .unwrap_err()
        .to_string()
}

// ---- Round trips ----

#[test]
fn openai_round_trip_is_stable() {
    let original = json!({
        "model": "m",
        "messages": [
            {"role": "system", "content": "Sys"},
            {"role": "user", "content": "Q"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"x\":1}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "R"},
            {"role": "assistant", "content": "Answer"},
            {"role": "user", "content": "More"}
        ],
        "tools": [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}}],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "max_tokens": 50,
        "stop": ["X"],
        "temperature": 0.5,
        "user": "u"
    });
    let anthropic = openai_to_anthropic(&original, "claude").unwrap();
    let back = anthropic_to_openai(&anthropic, "m").unwrap();
    assert_eq!(back["messages"], original["messages"]);
    assert_eq!(back["tools"], original["tools"]);
    assert_eq!(back["tool_choice"], original["tool_choice"]);
    assert_eq!(back["max_completion_tokens"], 50);
    assert_eq!(back["stop"], json!(["X"]));
    assert_eq!(back["temperature"], 0.5);
    assert_eq!(back["user"], "u");
}

#[test]
fn anthropic_round_trip_is_stable() {
    let original = json!({
        "model": "m",
        "system": "Sys",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Q"}]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"q": "x"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "R"},
                {"type": "text", "text": "Go on"}
            ]}
        ],
        "tools": [{"name": "f", "description": "d", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "any"},
        "max_tokens": 64,
        "stop_sequences": ["S"],
        "metadata": {"user_id": "u"}
    });
    let openai = anthropic_to_openai(&original, "gpt").unwrap();
    let back = openai_to_anthropic(&openai, "m").unwrap();
    assert_eq!(back["system"], original["system"]);
    assert_eq!(back["messages"], original["messages"]);
    assert_eq!(back["tools"], original["tools"]);
    assert_eq!(back["tool_choice"], original["tool_choice"]);
    assert_eq!(back["max_tokens"], 64);
    assert_eq!(back["stop_sequences"], json!(["S"]));
    assert_eq!(back["metadata"], json!({"user_id": "u"}));
}
