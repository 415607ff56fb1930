//! What a client may hold of the gateway: a body that never arrives, or more requests at
//! once than the gateway serves.

use std::time::Instant;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::gateway::auth::AuthMode;

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_is_answered_408() {
    let up = Upstream::always(|| openai_answer("fine")).await;
    let cfg = Config {
        body_read_timeout: Duration::from_millis(300),
        ..config()
    };
    let h = Harness::new(
        World::new(
            route(&[("b", 1)], &[]),
            vec![external("b", "openai", &up, json!({}))],
        ),
        cfg,
    );
    let url = h.serve_api(AuthMode::Disabled).await;
    let mut tcp = tokio::net::TcpStream::connect(url.trim_start_matches("http://"))
        .await
        .unwrap();
    let t = Instant::now();
    tcp.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"model\":")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
        .await
        .expect("answered")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("--body-read-timeout"), "{text}");
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert_eq!(up.calls(), 0);
}

#[tokio::test]
async fn past_the_in_flight_cap_requests_get_503_at_once_until_a_permit_frees() {
    let up = Upstream::always(|| {
        Reply::Sse(openai_stream(&["a", "b", "c"], Duration::from_millis(200)))
    })
    .await;
    let h = Harness::new(
        World::new(
            route(&[("b", 1)], &[]),
            vec![external("b", "openai", &up, json!({}))],
        ),
        config(),
    );
    let url = h.serve_api_limited(AuthMode::Disabled, 1).await;
    let body =
        json!({"model": "chat", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let client = reqwest::Client::new();
    // The stream holds the only permit until its last event, after its headers are sent.
    let streaming = client
        .post(format!("{url}/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(streaming.status(), 200);
    let t = Instant::now();
    let shed = client
        .post(format!("{url}/v1/messages"))
        .json(&json!({"model": "chat", "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(shed.status(), 503);
    assert!(t.elapsed() < Duration::from_millis(200), "answered at once");
    assert_eq!(shed.headers()["retry-after"], "1");
    let v: Value = shed.json().await.unwrap();
    assert_eq!(
        v["error"]["type"], "overloaded_error",
        "in the caller's dialect: {v}"
    );
    // The stream ends; its permit is free again.
    let text = streaming.text().await.unwrap();
    assert!(text.contains("[DONE]"), "{text}");
    let again = client
        .post(format!("{url}/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(up.calls(), 2);
}
