//! Structured-output validity: an answer to a request that asked for JSON mode or a schema
//! is counted in `switchyard_structured_output_total` as valid, invalid_json or
//! schema_mismatch, whichever dialects the caller and the backend speak, streamed or not.

use serde_json::json;

use super::*;

const METRIC: &str = "switchyard_structured_output_total";

fn schema() -> Value {
    json!({"type": "object", "properties": {"answer": {"type": "string"}, "score": {"type": "integer"}},
           "required": ["answer", "score"], "additionalProperties": false})
}

fn json_mode() -> Value {
    json!({"type": "json_object"})
}

fn json_schema() -> Value {
    json!({"type": "json_schema", "json_schema": {"name": "a", "strict": true, "schema": schema()}})
}

/// A route `chat` on one backend `b` of `dialect` served by `up`.
fn one_backend(up: &Upstream, dialect: &str) -> Harness {
    Harness::new(
        World::new(
            route(&[("b", 1)], &[]),
            vec![external("b", dialect, up, json!({}))],
        ),
        config(),
    )
}

impl Harness {
    /// An OpenAI chat request with `response_format`, streamed or not.
    async fn ask(&self, response_format: Value, stream: bool) -> super::Answer {
        let body = json!({"model": "chat", "stream": stream, "response_format": response_format,
                          "messages": [{"role": "user", "content": "rate it"}]});
        let a = self.call(Dialect::Openai, Operation::Chat, body).await;
        assert_eq!(a.status, 200, "{}", a.body);
        a
    }

    /// The answers counted with each outcome: (valid, invalid_json, schema_mismatch).
    fn verdicts(&self) -> (f64, f64, f64) {
        let n = |o| self.metric(METRIC, &[("backend", "b"), ("outcome", o)]);
        (n("valid"), n("invalid_json"), n("schema_mismatch"))
    }
}

/// The text an upstream answers, chosen by the request's position.
fn texts(all: &'static [&'static str]) -> impl Fn(usize) -> &'static str {
    move |n| all[n % all.len()]
}

const ANSWERS: &[&str] = &[
    r#"{"answer": "fine", "score": 4}"#,
    r#"{"answer": "fine", "score": 4"#,
    r#"{"answer": "fine"}"#,
];

#[tokio::test]
async fn json_mode_and_schema_answers_are_judged() {
    let text = texts(ANSWERS);
    let up = Upstream::start(move |n, _| openai_answer(text(n))).await;
    let h = one_backend(&up, "openai");
    for _ in ANSWERS {
        h.ask(json_schema(), false).await;
    }
    assert_eq!(h.verdicts(), (1.0, 1.0, 1.0));
    // JSON mode asks for any JSON: the object missing a property is valid there.
    for _ in ANSWERS {
        h.ask(json_mode(), false).await;
    }
    assert_eq!(h.verdicts(), (3.0, 2.0, 1.0));
    let series = |o| {
        h.series(
            METRIC,
            &[
                ("namespace", NS),
                ("route", "chat"),
                ("backend", "b"),
                ("provider", "openai"),
                ("outcome", o),
            ],
        )
    };
    assert_eq!(series("valid"), Some(3.0), "labelled like the other series");
}

#[tokio::test]
async fn streamed_answers_are_judged_on_their_concatenated_text() {
    let up = Upstream::start(|n, _| {
        let words: &[&str] = match n % 3 {
            0 => &["{\"answer\"", ": \"fine\",", " \"score\": 4}"],
            1 => &["{\"answer\"", ": \"fine\",", " \"score\": "],
            _ => &["{\"answer\"", ": \"fine\",", " \"score\": \"4\"}"],
        };
        Reply::Sse(openai_stream(words, Duration::ZERO))
    })
    .await;
    let h = one_backend(&up, "openai");
    for _ in 0..3 {
        let a = h.ask(json_schema(), true).await;
        assert!(a.body.contains("[DONE]"), "{}", a.body);
    }
    assert_eq!(h.verdicts(), (1.0, 1.0, 1.0));
}

fn anthropic_message(text: &str) -> Reply {
    Reply::Json(
        200,
        json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "c",
               "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": null,
               "usage": {"input_tokens": 3, "output_tokens": 5}}),
    )
}

/// An Anthropic stream whose text deltas are `parts`.
fn anthropic_text_stream(parts: &[&str]) -> Reply {
    let mut events = anthropic_preamble();
    for p in parts {
        events.push((
            Duration::ZERO,
            sse_event(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}}),
            ),
        ));
    }
    for (name, data) in [
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        (
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                   "usage": {"output_tokens": 5}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ] {
        events.push((Duration::ZERO, sse_event(name, data)));
    }
    Reply::Sse(events)
}

/// An Anthropic answer calling the structured-answer tool with `input`.
fn anthropic_answer_tool(input: Value) -> Reply {
    Reply::Json(
        200,
        json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "c",
               "content": [{"type": "tool_use", "id": "toolu_1", "name": "structured_output__a", "input": input}],
               "stop_reason": "tool_use", "stop_sequence": null,
               "usage": {"input_tokens": 3, "output_tokens": 5}}),
    )
}

/// An Anthropic stream calling the structured-answer tool, its input in `parts`.
fn anthropic_answer_tool_stream(parts: &[&str]) -> Reply {
    let mut events = anthropic_preamble();
    events[1] = (
        Duration::ZERO,
        sse_event(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block":
                   {"type": "tool_use", "id": "toolu_1", "name": "structured_output__a", "input": {}}}),
        ),
    );
    for p in parts {
        events.push((
            Duration::ZERO,
            sse_event(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": p}}),
            ),
        ));
    }
    for (name, data) in [
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        (
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null},
                   "usage": {"output_tokens": 5}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ] {
        events.push((Duration::ZERO, sse_event(name, data)));
    }
    Reply::Sse(events)
}

#[tokio::test]
async fn answers_translated_from_an_anthropic_backend_are_judged() {
    // The OpenAI caller's schema reaches Claude as a tool it must call; the call's input comes
    // back as the OpenAI answer's content, judged the same way. An answer that is not JSON
    // (text instead of the call, or a cut stream) is judged too.
    let text = texts(ANSWERS);
    let up = Upstream::start(move |n, req| {
        assert_eq!(
            req["tool_choice"],
            json!({"type": "tool", "name": "structured_output__a"}),
            "{req}"
        );
        assert_eq!(req["tools"][0]["input_schema"], schema(), "{req}");
        assert!(req.get("system").is_none(), "no prompt instruction: {req}");
        let t = text(n);
        if req["stream"] == json!(true) {
            let (a, b) = t.split_at(t.len() / 2);
            anthropic_answer_tool_stream(&[a, b])
        } else {
            match serde_json::from_str::<Value>(t) {
                Ok(input) => anthropic_answer_tool(input),
                Err(_) => anthropic_message(t),
            }
        }
    })
    .await;
    let h = one_backend(&up, "anthropic");
    for _ in ANSWERS {
        let a = h.ask(json_schema(), false).await;
        let v: Value = serde_json::from_str(&a.body).unwrap();
        assert_eq!(v["choices"][0]["finish_reason"], "stop", "{v}");
        assert!(
            v["choices"][0]["message"].get("tool_calls").is_none(),
            "{v}"
        );
    }
    assert_eq!(h.verdicts(), (1.0, 1.0, 1.0));
    for _ in ANSWERS {
        let a = h.ask(json_schema(), true).await;
        assert!(!a.body.contains("tool_calls"), "{}", a.body);
    }
    assert_eq!(h.verdicts(), (2.0, 2.0, 2.0));
    let provider = h.metric(
        METRIC,
        &[("provider", "anthropic"), ("outcome", "schema_mismatch")],
    );
    assert_eq!(provider, 2.0);
}

#[tokio::test]
async fn anthropic_callers_asking_with_output_config_are_judged() {
    let text = texts(ANSWERS);
    let up = Upstream::start(move |n, req| {
        assert_eq!(req["output_config"]["format"]["type"], "json_schema");
        anthropic_text_stream(&[text(n)])
    })
    .await;
    let h = one_backend(&up, "anthropic");
    for _ in ANSWERS {
        let body = json!({"model": "chat", "max_tokens": 64, "stream": true,
                          "output_config": {"format": {"type": "json_schema", "schema": schema()}},
                          "messages": [{"role": "user", "content": "rate it"}]});
        let a = h.call(Dialect::Anthropic, Operation::Chat, body).await;
        assert!(a.body.contains("message_stop"), "{}", a.body);
    }
    assert_eq!(h.verdicts(), (1.0, 1.0, 1.0));
}

#[tokio::test]
async fn other_requests_tool_calls_and_failed_answers_are_not_judged() {
    let up = Upstream::start(|n, _| match n {
        0 => openai_answer("plain text"),
        1 => Reply::Json(
            200,
            json!({"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
                   "choices": [{"index": 0, "message": {"role": "assistant", "content": null,
                     "tool_calls": [{"id": "t", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                     "finish_reason": "tool_calls"}],
                   "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}),
        ),
        _ => {
            // Cut before its end: an error already, not a verdict on the JSON.
            let mut events = openai_stream(&["{\"answer\"", ": \"fine\"}"], Duration::ZERO);
            events.truncate(2);
            Reply::Sse(events)
        }
    })
    .await;
    let h = one_backend(&up, "openai");
    assert_eq!(h.chat().await.status, 200);
    h.ask(json_schema(), false).await;
    h.ask(json_schema(), true).await;
    assert_eq!(h.series(METRIC, &[]), None, "no series at all");
    assert_eq!(h.attempts("b", "error", None), 1.0);
}
