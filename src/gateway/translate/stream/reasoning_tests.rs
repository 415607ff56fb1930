//! Streams with reasoning, structured answers, interleaved tool calls and cached tokens.

use serde_json::{Value, json};

use super::tests::{anthropic_sse, chunk, names, run_a2o, run_o2a, usage_chunk};
use super::{AnthropicToOpenAi, OpenAiToAnthropic};

fn deltas(chunks: &[Value]) -> Vec<&Value> {
    chunks
        .iter()
        .filter(|c| c["choices"][0].is_object())
        .map(|c| &c["choices"][0]["delta"])
        .collect()
}

#[test]
fn interleaved_parallel_tool_calls_become_whole_sequential_blocks() {
    let tc = |v: Value| chunk(json!({"tool_calls": [v]}), Value::Null);
    let mut conv = OpenAiToAnthropic::new("m");
    let out = run_o2a(
        &mut conv,
        &[
            tc(json!({"index": 0, "id": "call_A", "function": {"name": "a", "arguments": ""}})),
            tc(json!({"index": 1, "id": "call_B", "function": {"name": "b", "arguments": ""}})),
            tc(json!({"index": 0, "function": {"arguments": "{\"x\":"}})),
            tc(json!({"index": 1, "function": {"arguments": "{\"y\":"}})),
            tc(json!({"index": 0, "function": {"arguments": "1}"}})),
            tc(json!({"index": 1, "function": {"arguments": "2}"}})),
            chunk(json!({}), json!("tool_calls")),
            usage_chunk(10, 5),
        ],
    );
    // Blocks are sequential: every start is followed by its stop before the next start.
    let mut open: Option<u64> = None;
    let mut inputs: Vec<(String, String, String)> = Vec::new();
    for (name, data) in &out {
        let index = data["index"].as_u64();
        match name.as_str() {
            "content_block_start" => {
                assert_eq!(open, None, "{out:#?}");
                open = index;
                let b = &data["content_block"];
                inputs.push((
                    b["id"].as_str().unwrap().into(),
                    b["name"].as_str().unwrap().into(),
                    String::new(),
                ));
            }
            "content_block_delta" => {
                assert_eq!(index, open);
                let partial = data["delta"]["partial_json"].as_str().unwrap();
                inputs.last_mut().unwrap().2.push_str(partial);
            }
            "content_block_stop" => {
                assert_eq!(index, open);
                open = None;
            }
            _ => {}
        }
    }
    assert_eq!(
        inputs,
        vec![
            ("call_A".into(), "a".into(), "{\"x\":1}".into()),
            ("call_B".into(), "b".into(), "{\"y\":2}".into())
        ]
    );
    let stop = out.iter().find(|(n, _)| n == "message_delta").unwrap();
    assert_eq!(stop.1["delta"]["stop_reason"], "tool_use");
}

#[test]
fn anthropic_parallel_tool_blocks_keep_their_openai_indexes() {
    let transcript = anthropic_sse(&[
        json!({"type": "message_start", "message": {"id": "m", "usage": {"input_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "hm"}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "t1", "name": "a", "input": {}}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{}"}}),
        json!({"type": "content_block_stop", "index": 1}),
        json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "t2", "name": "b", "input": {}}}),
        json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{\"k\":1}"}}),
        json!({"type": "content_block_stop", "index": 2}),
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 3}}),
        json!({"type": "message_stop"}),
    ]);
    let mut conv = AnthropicToOpenAi::new("m", 0, false);
    let chunks = run_a2o(&mut conv, &transcript);
    let calls: Vec<&Value> = deltas(&chunks)
        .into_iter()
        .filter_map(|d| d["tool_calls"].get(0))
        .collect();
    assert_eq!(calls[0]["index"], 0);
    assert_eq!(calls[0]["id"], "t1");
    assert_eq!(calls[1]["index"], 0);
    assert_eq!(calls[2]["index"], 1);
    assert_eq!(calls[2]["id"], "t2");
    assert_eq!(calls[3]["index"], 1);
    assert_eq!(calls[3]["function"]["arguments"], "{\"k\":1}");
}

#[test]
fn anthropic_thinking_streams_as_reasoning_content_with_its_signature() {
    let transcript = anthropic_sse(&[
        json!({"type": "message_start", "message": {"id": "m", "usage": {"input_tokens": 30, "cache_read_input_tokens": 20}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Let me "}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "think."}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "EqQB"}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "content_block_start", "index": 1, "content_block": {"type": "redacted_thinking", "data": "opaque"}}),
        json!({"type": "content_block_stop", "index": 1}),
        json!({"type": "content_block_start", "index": 2, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "content_block_delta", "index": 2, "delta": {"type": "text_delta", "text": "42"}}),
        json!({"type": "content_block_stop", "index": 2}),
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 9}}),
        json!({"type": "message_stop"}),
    ]);
    let mut conv = AnthropicToOpenAi::new("m", 0, true);
    let chunks = run_a2o(&mut conv, &transcript);
    let d = deltas(&chunks);
    let reasoning: String = d
        .iter()
        .filter_map(|d| d["reasoning_content"].as_str())
        .collect();
    assert_eq!(reasoning, "Let me think.");
    let blocks: Vec<&Value> = d
        .iter()
        .filter_map(|d| d["thinking_blocks"].get(0))
        .collect();
    assert_eq!(
        blocks,
        vec![
            &json!({"type": "thinking", "thinking": "Let me think.", "signature": "EqQB"}),
            &json!({"type": "redacted_thinking", "data": "opaque"})
        ]
    );
    let content: String = d.iter().filter_map(|d| d["content"].as_str()).collect();
    assert_eq!(content, "42");
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(usage["prompt_tokens"], 50);
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 20);
    assert_eq!(conv.usage().cached, 20);
}

#[test]
fn the_structured_answer_tool_streams_as_content() {
    let transcript = anthropic_sse(&[
        json!({"type": "message_start", "message": {"id": "m", "usage": {"input_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "t", "name": "structured_output__Answer", "input": {}}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{\"n\":"}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": " 4}"}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 3}}),
        json!({"type": "message_stop"}),
    ]);
    let mut conv = AnthropicToOpenAi::new("m", 0, false);
    let chunks = run_a2o(&mut conv, &transcript);
    let d = deltas(&chunks);
    assert!(d.iter().all(|d| d.get("tool_calls").is_none()), "{d:#?}");
    let content: String = d.iter().filter_map(|d| d["content"].as_str()).collect();
    assert_eq!(content, "{\"n\": 4}");
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
}

#[test]
fn the_answer_tool_beside_a_real_call_still_finishes_with_tool_calls() {
    let transcript = anthropic_sse(&[
        json!({"type": "message_start", "message": {"id": "m", "usage": {"input_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "t", "name": "get_weather", "input": {}}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "u", "name": "structured_output__A", "input": {}}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{}"}}),
        json!({"type": "content_block_stop", "index": 1}),
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 3}}),
        json!({"type": "message_stop"}),
    ]);
    let mut conv = AnthropicToOpenAi::new("m", 0, false);
    let chunks = run_a2o(&mut conv, &transcript);
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );
}

#[test]
fn openai_reasoning_content_streams_as_a_thinking_block() {
    let mut conv = OpenAiToAnthropic::new("m");
    let mut last = chunk(json!({}), json!("stop"));
    last["usage"] = json!({"prompt_tokens": 30, "completion_tokens": 4, "prompt_tokens_details": {"cached_tokens": 12}});
    let out = run_o2a(
        &mut conv,
        &[
            chunk(
                json!({"role": "assistant", "reasoning_content": "Think"}),
                Value::Null,
            ),
            chunk(json!({"reasoning": "ing."}), Value::Null),
            chunk(
                json!({"content": "Done", "reasoning_content": null}),
                Value::Null,
            ),
            last,
        ],
    );
    assert_eq!(
        names(&out),
        vec![
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(
        out[1].1["content_block"],
        json!({"type": "thinking", "thinking": "", "signature": ""})
    );
    assert_eq!(
        out[3].1["delta"],
        json!({"type": "thinking_delta", "thinking": "ing."})
    );
    assert_eq!(out[5].1["content_block"]["type"], "text");
    assert_eq!(out[5].1["index"], 1);
    assert_eq!(
        out[8].1["usage"],
        json!({"input_tokens": 18, "cache_read_input_tokens": 12, "output_tokens": 4})
    );
    assert_eq!(conv.usage().cached, 12);
    assert_eq!(conv.usage().input, 30);
}

#[test]
fn a_content_chunk_with_reasoning_takes_the_general_path() {
    let mut conv = OpenAiToAnthropic::new("m");
    // A text block is open, so a plain content chunk would take the fast path.
    conv.push(&chunk(json!({"content": "a"}), Value::Null));
    let mut out = String::new();
    assert!(conv.text_fast(
        &chunk(json!({"content": "b"}), Value::Null).to_string(),
        &mut out
    ));
    let both = chunk(
        json!({"content": "b", "reasoning_content": "r"}),
        Value::Null,
    );
    assert!(!conv.text_fast(&both.to_string(), &mut String::new()));
}
