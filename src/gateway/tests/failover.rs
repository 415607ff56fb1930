//! Where a request goes when the backend its weight chose cannot serve it, and how each
//! attempt is recorded for the controller's analysis.

use serde_json::json;

use super::*;

fn good() -> impl Fn() -> Reply + Send + Sync + 'static {
    || openai_answer("fine")
}

#[tokio::test]
async fn a_backend_that_cannot_take_the_request_is_recorded_and_its_share_goes_to_the_split() {
    let up = Upstream::always(good()).await;
    let limited = Upstream::always(|| Reply::RateLimited(30)).await;
    let locked_extra =
        json!({"credentials": {"secretRef": {"name": "locked-key", "key": "apiKey"}}});
    let mut locked = external("locked", "openai", &up, json!({}));
    locked.spec.external.as_mut().unwrap().credentials =
        serde_json::from_value(locked_extra["credentials"].clone()).unwrap();
    let (empty, _) = self_hosted("empty", &[]);
    let world = World::new(
        route(
            &[
                ("good", 40),
                ("locked", 15),
                ("ghost", 15),
                ("empty", 15),
                ("limited", 15),
            ],
            &[],
        ),
        vec![
            external("good", "openai", &up, json!({})),
            locked,
            empty,
            external("limited", "openai", &limited, json!({})),
        ],
    );
    let h = Harness::new(world, config());
    for _ in 0..100 {
        let a = h.chat().await;
        assert_eq!(
            (a.status, a.backend.as_deref()),
            (200, Some("good")),
            "{}",
            a.body
        );
    }
    assert_eq!(up.calls(), 100);
    // Every landing by weight is one recorded attempt with a fixed reason, labelled with the
    // provider its spec names.
    let unavailable = |b: &str, code: &str, provider: &str| {
        h.metric(
            "switchyard_requests_total",
            &[
                ("backend", b),
                ("outcome", "unavailable"),
                ("code", code),
                ("provider", provider),
            ],
        )
    };
    assert_eq!(unavailable("locked", "no_credentials", "openai"), 15.0);
    assert_eq!(unavailable("ghost", "missing", "unknown"), 15.0);
    assert_eq!(unavailable("empty", "no_endpoints", "vllm"), 15.0);
    // The 429 asked for 30 s: one real attempt (a landing, or a re-pick that came first),
    // then the backend is cooling down for every landing.
    assert_eq!(limited.calls(), 1);
    assert_eq!(h.attempts("limited", "failover", Some("429")), 1.0);
    let cooling = unavailable("limited", "cooling_down", "openai");
    assert!((14.0..=15.0).contains(&cooling), "{cooling}");
    assert_eq!(h.attempts("good", "success", Some("200")), 100.0);
}

#[tokio::test]
async fn the_first_unavailable_attempt_is_an_increase_prometheus_sees() {
    let up = Upstream::always(good()).await;
    let h = Harness::new(
        World::new(
            route(&[("good", 1)], &[]),
            vec![external("good", "openai", &up, json!({}))],
        ),
        config(),
    );
    assert_eq!(h.chat().await.status, 200);
    for outcome in ["success", "failover", "error", "unavailable"] {
        assert_eq!(
            h.series(
                "switchyard_request_duration_seconds_count",
                &[("backend", "good"), ("outcome", outcome)]
            ),
            Some(if outcome == "success" { 1.0 } else { 0.0 }),
            "{outcome} is exported from the first attempt on"
        );
    }
}

#[tokio::test]
async fn upstream_404_is_a_backend_fault_that_fails_over() {
    let wrong = Upstream::always(|| {
        openai_error(404, "The model `gpt-9` does not exist", "model_not_found")
    })
    .await;
    let up = Upstream::always(good()).await;
    let h = Harness::new(
        World::new(
            route(&[("wrong", 1)], &["spare"]),
            vec![
                external("wrong", "openai", &wrong, json!({})),
                external("spare", "openai", &up, json!({})),
            ],
        ),
        config(),
    );
    let a = h.chat().await;
    assert_eq!((a.status, a.backend.as_deref()), (200, Some("spare")));
    assert_eq!(h.attempts("wrong", "failover", Some("404")), 1.0);

    let alone = Harness::new(
        World::new(
            route(&[("wrong", 1)], &[]),
            vec![external("wrong", "openai", &wrong, json!({}))],
        ),
        config(),
    );
    let a = alone.chat().await;
    assert_eq!(a.status, 502, "{}", a.body);
    assert!(!a.body.contains("model_not_found"), "{}", a.body);
    assert!(a.body.contains("wrong"), "names the backend: {}", a.body);
    assert_eq!(alone.attempts("wrong", "error", Some("404")), 1.0);
}

#[tokio::test]
async fn client_errors_are_recorded_apart_from_backend_failures() {
    for status in [400u16, 413, 422] {
        let picky = Upstream::always(move || openai_error(status, "bad field", "")).await;
        let up = Upstream::always(good()).await;
        let h = Harness::new(
            World::new(
                route(&[("picky", 1)], &["spare"]),
                vec![
                    external("picky", "openai", &picky, json!({})),
                    external("spare", "openai", &up, json!({})),
                ],
            ),
            config(),
        );
        let a = h.chat().await;
        assert_eq!(a.status, status, "the caller's mistake is the caller's");
        assert_eq!(up.calls(), 0, "another backend would say the same");
        let code = status.to_string();
        assert_eq!(h.attempts("picky", "client_error", Some(&code)), 1.0);
        assert_eq!(h.attempts("picky", "error", None), 0.0);
    }
}

#[tokio::test]
async fn a_request_one_backend_cannot_express_goes_to_another_of_the_split() {
    let claude = Upstream::always(|| Reply::Json(500, json!({}))).await;
    let oa = Upstream::start(|_, req| {
        if req.get("input").is_some() {
            openai_embedding()
        } else {
            openai_answer("two choices")
        }
    })
    .await;
    let h = Harness::new(
        World::new(
            route(&[("claude", 50), ("oa", 50)], &[]),
            vec![
                external("claude", "anthropic", &claude, json!({})),
                external("oa", "openai", &oa, json!({})),
            ],
        ),
        config(),
    );
    for _ in 0..4 {
        let a = h
            .call(
                Dialect::Openai,
                Operation::Embeddings,
                json!({"model": "chat", "input": "x"}),
            )
            .await;
        assert_eq!(
            (a.status, a.backend.as_deref()),
            (200, Some("oa")),
            "{}",
            a.body
        );
    }
    // Embeddings never land on a dialect without them: nothing to count against it.
    assert_eq!(h.attempts("claude", "client_error", None), 0.0);
    for _ in 0..4 {
        // `n: 2` has no Anthropic equivalent.
        let a = h
            .call(
                Dialect::Openai,
                Operation::Chat,
                json!({"model": "chat", "n": 2, "messages": [{"role": "user", "content": "x"}]}),
            )
            .await;
        assert_eq!(
            (a.status, a.backend.as_deref()),
            (200, Some("oa")),
            "{}",
            a.body
        );
    }
    assert_eq!(claude.calls(), 0);
    // Half the chat requests landed on it and could not be expressed there.
    assert_eq!(h.attempts("claude", "client_error", None), 2.0);
    assert_eq!(h.attempts("claude", "error", None), 0.0);

    // Nothing in the split can: the caller gets the translator's reason, in its dialect.
    let only = Harness::new(
        World::new(
            route(&[("claude", 1)], &[]),
            vec![external("claude", "anthropic", &claude, json!({}))],
        ),
        config(),
    );
    let a = only
        .call(
            Dialect::Openai,
            Operation::Chat,
            json!({"model": "chat", "n": 2, "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    assert_eq!(a.status, 400);
    assert!(a.body.contains("n: only one choice"), "{}", a.body);
}
