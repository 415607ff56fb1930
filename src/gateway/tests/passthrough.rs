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
    let h = Harness::new(
        World::new(
            route(&[("same", 1)], &[]),
            vec![external("same", "openai", &up, serde_json::json!({}))],
        ),
        config(),
    );
    let body =
        json!({"model": "chat", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let resp =
        h.gw.clone()
            .serve(
                Dialect::Openai,
                Operation::Chat,
                HeaderMap::new(),
                Body::from(body.to_string()),
            )
            .await;
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
