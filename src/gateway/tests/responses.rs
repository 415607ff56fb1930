//! The Responses API through the gateway: passed through to a backend that has it,
//! translated to Chat Completions or Anthropic Messages for the others, and refused
//! before any backend is called when it needs stored responses.

use serde_json::json;

use super::*;

fn harness(backend: InferenceBackend) -> Harness {
    Harness::new(
        World::new(
            route(&[(backend.metadata.name.clone().unwrap().as_str(), 1)], &[]),
            vec![backend],
        ),
        config(),
    )
}

fn ask(stream: bool) -> Value {
    json!({"model": "chat", "instructions": "Be brief.", "input": "hi", "max_output_tokens": 32,
           "reasoning": {"effort": "low"}, "stream": stream})
}

#[tokio::test]
async fn a_chat_completions_backend_gets_chat_and_the_caller_a_response() {
    let up = Upstream::start(|_, body| {
        // What a vLLM server would be sent: messages, and the reasoning model's parameters.
        assert_eq!(
            body["messages"][0],
            json!({"role": "system", "content": "Be brief."})
        );
        assert_eq!(body["max_completion_tokens"], 32);
        assert_eq!(body["reasoning_effort"], "low");
        assert!(body.get("input").is_none() && body.get("max_tokens").is_none());
        openai_answer("hello")
    })
    .await;
    let h = harness(external("llama", "openai", &up, json!({})));
    let a = h
        .call(Dialect::Openai, Operation::Responses, ask(false))
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let r: Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(r["object"], "response");
    assert_eq!(r["status"], "completed");
    assert_eq!(r["output"][0]["content"][0]["text"], "hello");
    assert_eq!(r["usage"]["output_tokens"], 1);
    assert_eq!(
        h.metric(
            "switchyard_tokens_total",
            &[("backend", "llama"), ("type", "output")]
        ),
        1.0
    );
}

#[tokio::test]
async fn a_backend_with_the_responses_api_gets_the_request_as_sent() {
    let answer = json!({"id": "resp_1", "object": "response", "status": "completed", "model": "gpt",
        "output": [{"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                    "content": [{"type": "output_text", "text": "native", "annotations": []}]}],
        "usage": {"input_tokens": 7, "input_tokens_details": {"cached_tokens": 2}, "output_tokens": 3}});
    let sent = answer.clone();
    let up = Upstream::start(move |_, body| {
        assert_eq!(body["input"], "hi", "the Responses API's own body");
        assert_eq!(body["model"], "gpt-model", "with the backend's model");
        assert_eq!(
            body["store"], false,
            "nothing stored at the provider by default"
        );
        Reply::Json(200, sent.clone())
    })
    .await;
    let h = harness(external(
        "gpt",
        "openai",
        &up,
        json!({"capabilities": {"responsesApi": true}}),
    ));
    let a = h
        .call(Dialect::Openai, Operation::Responses, ask(false))
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(serde_json::from_str::<Value>(&a.body).unwrap(), answer);
    assert_eq!(
        h.metric(
            "switchyard_tokens_total",
            &[("backend", "gpt"), ("type", "input")]
        ),
        7.0
    );
}

#[tokio::test]
async fn an_anthropic_backend_streams_the_responses_event_sequence() {
    let mut events = anthropic_preamble();
    for (event, data) in [
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        (
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 4}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ] {
        events.push((Duration::ZERO, sse_event(event, data)));
    }
    let up = Upstream::start(move |_, body| {
        assert_eq!(body["system"], "Be brief.");
        // `reasoning.effort: low` is a thinking budget, with room left for the answer.
        assert_eq!(
            body["thinking"],
            json!({"type": "enabled", "budget_tokens": 1024})
        );
        assert_eq!(body["max_tokens"], 1024 + 32);
        Reply::Sse(events.clone())
    })
    .await;
    let h = harness(external("claude", "anthropic", &up, json!({})));
    let a = h
        .call(Dialect::Openai, Operation::Responses, ask(true))
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let types: Vec<String> = a
        .body
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .map(str::to_owned)
        .collect();
    assert_eq!(types.first().map(String::as_str), Some("response.created"));
    assert_eq!(types.last().map(String::as_str), Some("response.completed"));
    let last = a
        .body
        .lines()
        .rev()
        .filter_map(|l| l.strip_prefix("data: "))
        .next()
        .unwrap();
    let done: Value = serde_json::from_str(last).unwrap();
    assert_eq!(done["response"]["output"][0]["content"][0]["text"], "Hello");
    assert_eq!(done["response"]["usage"]["output_tokens"], 4);
}

#[tokio::test]
async fn stored_responses_are_refused_before_any_backend_is_called() {
    let up = Upstream::always(|| openai_answer("never")).await;
    let h = harness(external(
        "gpt",
        "openai",
        &up,
        json!({"capabilities": {"responsesApi": true}}),
    ));
    for extra in [
        json!({"previous_response_id": "resp_1"}),
        json!({"store": true}),
    ] {
        let mut body = json!({"model": "chat", "input": "hi"});
        merge(&mut body, extra);
        let a = h.call(Dialect::Openai, Operation::Responses, body).await;
        assert_eq!(a.status, 400, "{}", a.body);
        let e: Value = serde_json::from_str(&a.body).unwrap();
        assert!(
            e["error"]["message"]
                .as_str()
                .unwrap()
                .contains("stores no responses"),
            "{e}"
        );
    }
    assert_eq!(up.calls(), 0);
}
