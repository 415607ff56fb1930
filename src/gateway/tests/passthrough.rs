//! Same dialect on both sides: the gateway forwards the upstream's bytes, not a re-encoding
//! of them, and still reads the usage.

use futures::StreamExt;
use serde_json::json;

use super::*;

#[tokio::test]
async fn a_same_dialect_answer_reaches_the_caller_byte_for_byte() {
    // Spacing, key order and a number no f64 holds exactly: a parse and re-encode changes each.
    let raw = r#"{"id": "x",  "z_unknown": 12345678901234567890123, "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 3, "completion_tokens": 5}}"#;
    let up = Upstream::always(move || Reply::SlowBody(200, Duration::ZERO, raw.to_owned())).await;
    let h = Harness::new(
        World::new(
            route(&[("same", 1)], &[]),
            vec![external("same", "openai", &up, serde_json::json!({}))],
        ),
        config(),
    );
    let a = h.chat().await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body, raw);
    assert_eq!(
        h.metric(
            "switchyard_tokens_total",
            &[("backend", "same"), ("type", "output")]
        ),
        5.0
    );
}

#[tokio::test]
async fn events_that_arrive_together_leave_together() {
    // One upstream write with the whole stream: the caller should get it in one or two writes
    // (what was held back before the first token, then the rest), not one per event.
    let all: String = openai_stream(&["a", "b", "c", "d", "e", "f", "g", "h"], Duration::ZERO)
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    let up = Upstream::always(move || Reply::Sse(vec![(Duration::ZERO, all.clone())])).await;
    let (_h, resp) = same_dialect_stream(&up).await;
    assert_eq!(resp.status(), 200);
    let frames: Vec<Bytes> = resp
        .into_body()
        .into_data_stream()
        .map(|f| f.unwrap())
        .collect()
        .await;
    let text: String = frames.iter().map(|f| String::from_utf8_lossy(f)).collect();
    assert!(
        text.contains("\"h\"") && text.ends_with("data: [DONE]\n\n"),
        "{text}"
    );
    assert!(
        frames.len() <= 2,
        "{} writes for one upstream read",
        frames.len()
    );
}

/// A gateway whose route `chat` goes to the OpenAI upstream `up`, and its answer to an
/// OpenAI caller's streamed request.
async fn same_dialect_stream(up: &Upstream) -> (Harness, Response) {
    let h = Harness::new(
        World::new(
            route(&[("same", 1)], &[]),
            vec![external("same", "openai", up, serde_json::json!({}))],
        ),
        config(),
    );
    let body =
        json!({"model": "chat", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let resp =
        h.gw.clone()
            .serve(
                Arc::new(crate::gateway::auth::Caller::anonymous()),
                Dialect::Openai,
                Operation::Chat,
                HeaderMap::new(),
                Body::from(body.to_string()),
            )
            .await;
    (h, resp)
}

/// An upstream that records the raw bodies it is sent and answers `answer`.
async fn recording(answer: &'static str) -> (Upstream, Arc<std::sync::Mutex<Vec<Bytes>>>) {
    let seen = Arc::new(std::sync::Mutex::new(vec![]));
    let log = seen.clone();
    let app = axum::Router::new().fallback(move |body: Bytes| {
        let log = log.clone();
        async move {
            log.lock().unwrap().push(body);
            ([(header::CONTENT_TYPE, "application/json")], answer)
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (Upstream::at(port), seen)
}

#[tokio::test]
async fn a_same_dialect_request_reaches_the_backend_with_only_the_model_changed() {
    let answer =
        r#"{"id": "x", "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}"#;
    let (up, seen) = recording(answer).await;
    let h = Harness::new(
        World::new(
            route(&[("a", 1)], &[]),
            vec![external("a", "openai", &up, json!({}))],
        ),
        config(),
    );
    // Key order, spacing, number spelling, escapes and a nested `model` key are the caller's:
    // a parse and re-encode changes each.
    let request = "{\"temperature\": 0.50, \"model\" : \"chat\",\n \"messages\": [{\"role\": \"user\", \"content\": \"caf\\u00e9\"}], \"seed\": 12345678901234567890123, \"zeta\": {\"model\": \"inner\"}}";
    let resp =
        h.gw.clone()
            .serve(
                Arc::new(crate::gateway::auth::Caller::anonymous()),
                Dialect::Openai,
                Operation::Chat,
                HeaderMap::new(),
                Body::from(request),
            )
            .await;
    assert_eq!(resp.status(), 200);
    let sent = seen.lock().unwrap()[0].clone();
    assert_eq!(
        String::from_utf8_lossy(&sent),
        request.replace("\"chat\"", "\"a-model\"")
    );
}

#[tokio::test]
async fn a_same_dialect_stream_request_asks_for_usage_and_keeps_the_callers_options() {
    let (up, seen) = recording("{}").await;
    let h = Harness::new(
        World::new(
            route(&[("a", 1)], &[]),
            vec![external("a", "openai", &up, json!({}))],
        ),
        config(),
    );
    let request = r#"{"model":"chat","stream":true,"stream_options":{"x_keep":1},"messages":[{"role":"user","content":"hi"}]}"#;
    let _ =
        h.gw.clone()
            .serve(
                Arc::new(crate::gateway::auth::Caller::anonymous()),
                Dialect::Openai,
                Operation::Chat,
                HeaderMap::new(),
                Body::from(request),
            )
            .await;
    let sent = seen.lock().unwrap()[0].clone();
    let v: serde_json::Value = serde_json::from_slice(&sent).unwrap();
    assert_eq!(v["model"], "a-model");
    assert_eq!(
        v["stream_options"],
        json!({"x_keep": 1, "include_usage": true})
    );
}

/// A caller that leaves mid-stream releases the backend at once: the gateway stops reading
/// the upstream, the attempt is counted as 499 and nothing is left in flight, without
/// waiting for the upstream's next event.
#[tokio::test]
async fn a_caller_leaving_mid_stream_ends_the_attempt_at_once() {
    let mut events = openai_stream(&["first"], Duration::ZERO);
    events.insert(
        2,
        (
            Duration::from_secs(5),
            sse(&json!({"choices": [{"index": 0, "delta": {"content": "late"}}]}).to_string()),
        ),
    );
    let up = Upstream::always(move || Reply::Sse(events.clone())).await;
    let (h, resp) = same_dialect_stream(&up).await;
    assert_eq!(resp.status(), 200);
    let mut frames = resp.into_body().into_data_stream();
    let first = frames.next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("first"));
    let in_flight = || h.metric("switchyard_requests_in_flight", &[("backend", "same")]);
    assert_eq!(in_flight(), 1.0);
    drop(frames);
    // The gateway's side of the stream is its own: a moment for it to notice.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(in_flight(), 0.0, "the attempt is still in flight");
    assert_eq!(
        h.metric(
            "switchyard_requests_total",
            &[("backend", "same"), ("outcome", "success"), ("code", "499")]
        ),
        1.0
    );
}
