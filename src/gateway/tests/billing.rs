//! No double billing: once a provider has answered 2xx (or streamed content), the request is
//! never sent to another backend; before that, failing over is free.

use serde_json::json;

use super::*;

fn two_tiers(
    primary: &Upstream,
    primary_dialect: &str,
    spare: &Upstream,
    primary_extra: Value,
) -> World {
    World::new(
        route(&[("primary", 1)], &["spare"]),
        vec![
            external("primary", primary_dialect, primary, primary_extra),
            external("spare", "openai", spare, json!({})),
        ],
    )
}

#[tokio::test]
async fn a_slow_2xx_body_is_a_504_and_never_sent_again() {
    let slow = Upstream::always(|| {
        Reply::SlowBody(
            200,
            Duration::from_millis(900),
            json!({"choices": [{"message": {"role": "assistant", "content": "late"}}]}).to_string(),
        )
    })
    .await;
    let spare = Upstream::always(|| openai_answer("spare")).await;
    let h = Harness::new(
        two_tiers(
            &slow,
            "openai",
            &spare,
            json!({"limits": {"timeout": "300ms"}}),
        ),
        config(),
    );
    let a = h.chat().await;
    assert_eq!(a.status, 504, "{}", a.body);
    assert_eq!((slow.calls(), spare.calls()), (1, 0));
    assert_eq!(h.attempts("primary", "error", None), 1.0);
    assert_eq!(h.attempts("primary", "failover", None), 0.0);
}

#[tokio::test]
async fn a_malformed_2xx_is_a_502_and_never_sent_again() {
    let broken = Upstream::always(|| Reply::Garbage).await;
    let spare = Upstream::always(|| openai_answer("spare")).await;
    let h = Harness::new(two_tiers(&broken, "openai", &spare, json!({})), config());
    let a = h.chat().await;
    assert_eq!(a.status, 502, "{}", a.body);
    assert!(a.body.contains("malformed"), "{}", a.body);
    assert_eq!((broken.calls(), spare.calls()), (1, 0));
}

#[tokio::test]
async fn a_stream_failing_before_its_first_content_token_fails_over() {
    // Anthropic: message_start, content_block_start and ping, then overloaded_error.
    let overloaded = Upstream::always(|| {
        let mut events = anthropic_preamble();
        events.push(anthropic_overloaded());
        Reply::Sse(events)
    })
    .await;
    let spare =
        Upstream::always(|| Reply::Sse(openai_stream(&["fresh", "words"], Duration::ZERO))).await;
    let h = Harness::new(
        two_tiers(&overloaded, "anthropic", &spare, json!({})),
        config(),
    );
    for caller in [Dialect::Openai, Dialect::Anthropic] {
        let a = h.chat_stream(caller).await;
        assert_eq!(
            (a.status, a.backend.as_deref()),
            (200, Some("spare")),
            "{}",
            a.body
        );
        assert!(
            a.body.contains("fresh") && a.body.contains("words"),
            "{}",
            a.body
        );
        assert!(!a.body.contains("Overloaded"), "{}", a.body);
    }
    assert_eq!(h.attempts("primary", "failover", None), 2.0);

    // OpenAI: the role-only chunk, then an error chunk.
    let failing = Upstream::always(|| {
        let mut events = openai_stream(&[], Duration::ZERO);
        events.truncate(1);
        events.push((
            Duration::ZERO,
            sse(
                &json!({"error": {"message": "engine overloaded", "type": "server_error"}})
                    .to_string(),
            ),
        ));
        Reply::Sse(events)
    })
    .await;
    let h = Harness::new(two_tiers(&failing, "openai", &spare, json!({})), config());
    let a = h.chat_stream(Dialect::Openai).await;
    assert_eq!(
        (a.status, a.backend.as_deref()),
        (200, Some("spare")),
        "{}",
        a.body
    );
    assert!(!a.body.contains("engine overloaded"), "{}", a.body);
}

#[tokio::test]
async fn a_stream_past_its_first_content_token_is_never_sent_again() {
    let cut = Upstream::always(|| {
        let mut events = openai_stream(&["one", "two", "three"], Duration::ZERO);
        events.truncate(3); // role chunk, "one", "two": then the connection closes
        Reply::Sse(events)
    })
    .await;
    let spare = Upstream::always(|| Reply::Sse(openai_stream(&["spare"], Duration::ZERO))).await;
    let h = Harness::new(two_tiers(&cut, "openai", &spare, json!({})), config());
    let a = h.chat_stream(Dialect::Openai).await;
    assert_eq!(a.status, 200);
    assert!(
        a.body.contains("one") && a.body.contains("before it was complete"),
        "{}",
        a.body
    );
    assert_eq!(spare.calls(), 0);

    // The first token and an error in one read: the error ends the committed stream.
    let overloaded = Upstream::always(|| {
        let delta = sse_event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "first"}}),
        );
        let mut events = anthropic_preamble();
        events.push((Duration::ZERO, delta + &anthropic_overloaded().1));
        Reply::Sse(events)
    })
    .await;
    let h = Harness::new(
        two_tiers(&overloaded, "anthropic", &spare, json!({})),
        config(),
    );
    let a = h.chat_stream(Dialect::Openai).await;
    assert_eq!((a.status, a.backend.as_deref()), (200, Some("primary")));
    assert!(
        a.body.contains("first") && a.body.contains("Overloaded"),
        "{}",
        a.body
    );
    assert_eq!(spare.calls(), 0);
    assert_eq!(h.attempts("primary", "error", Some("stream_error")), 1.0);
}

#[tokio::test]
async fn a_stream_without_content_within_the_backend_timeout_fails_over() {
    // A preamble, then pings for longer than the 300 ms timeout, each well within it.
    let stalling = Upstream::always(|| {
        let mut events = anthropic_preamble();
        for _ in 0..10 {
            events.push((Duration::from_millis(100), sse_event("ping", json!({"type": "ping"}))));
        }
        let late = [
            sse_event(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "late"}}),
            ),
            sse_event("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
            sse_event(
                "message_delta",
                json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 1}}),
            ),
            sse_event("message_stop", json!({"type": "message_stop"})),
        ];
        events.extend(late.map(|e| (Duration::ZERO, e)));
        Reply::Sse(events)
    })
    .await;
    let spare = Upstream::always(|| Reply::Sse(openai_stream(&["spare"], Duration::ZERO))).await;
    let h = Harness::new(
        two_tiers(
            &stalling,
            "anthropic",
            &spare,
            json!({"limits": {"timeout": "300ms"}}),
        ),
        config(),
    );
    let a = h.chat_stream(Dialect::Openai).await;
    assert_eq!(
        (a.status, a.backend.as_deref()),
        (200, Some("spare")),
        "{}",
        a.body
    );
    assert_eq!(h.attempts("primary", "failover", Some("timeout")), 1.0);
}

#[tokio::test]
async fn the_request_timeout_bounds_a_stream() {
    let endless = Upstream::always(|| {
        let words: Vec<String> = (0..60).map(|i| format!("w{i}")).collect();
        let refs: Vec<&str> = words.iter().map(String::as_str).collect();
        Reply::Sse(openai_stream(&refs, Duration::from_millis(100)))
    })
    .await;
    let world = World::new(
        route(&[("endless", 1)], &[]),
        vec![external("endless", "openai", &endless, json!({}))],
    );
    let cfg = Config {
        request_timeout: Duration::from_millis(800),
        ..config()
    };
    let h = Harness::new(world, cfg);
    let a = h.chat_stream(Dialect::Openai).await;
    assert_eq!(a.status, 200);
    assert!(a.body.contains("w0"), "{}", a.body);
    assert!(
        !a.body.contains("[DONE]"),
        "cut by the request timeout: {}",
        a.body
    );
    assert!(a.body.contains("request-timeout"), "{}", a.body);
    let a = h.chat_stream(Dialect::Anthropic).await;
    assert!(a.body.contains("event: error"), "{}", a.body);
    assert!(!a.body.contains("message_stop"), "{}", a.body);
}
