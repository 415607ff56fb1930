//! What the gateway's upstream client does with what a backend answers besides an answer.

use serde_json::json;

use super::*;

/// A backend that redirects is a misconfigured backend: following it would carry the
/// request, the backend's credential with it, to a place nobody configured. The gateway
/// does not follow; it fails over and tells the caller where the redirect led.
#[tokio::test]
async fn a_redirect_is_never_followed_and_the_request_fails_over() {
    let elsewhere = Upstream::always(|| openai_answer("followed")).await;
    let target = format!("http://127.0.0.1:{}/v1/chat/completions", elsewhere.port);
    let redirecting = Upstream::always(move || Reply::Redirect(307, target.clone())).await;
    let fallback = Upstream::always(|| openai_answer("fallback")).await;
    let key = json!({"credentials": {"secretRef": {"name": "key", "key": "apiKey"}}});
    let mut moved = external("moved", "openai", &redirecting, json!({}));
    moved.spec.external.as_mut().unwrap().credentials =
        serde_json::from_value(key["credentials"].clone()).unwrap();
    let mut world = World::new(
        route(&[("moved", 1)], &["spare"]),
        vec![moved, external("spare", "openai", &fallback, json!({}))],
    );
    world
        .secrets
        .push(obj(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "key", "namespace": NS, "labels": {"switchyard.dev/credential": "provider"}},
        "stringData": {"apiKey": "sk-secret"}})));
    let h = Harness::new(world, config());

    let a = h.chat().await;
    assert_eq!(
        (a.status, a.backend.as_deref()),
        (200, Some("spare")),
        "{}",
        a.body
    );
    assert_eq!(elsewhere.calls(), 0, "the redirect was followed");
    assert_eq!(redirecting.calls(), 1);
    assert_eq!(
        h.metric(
            "switchyard_requests_total",
            &[
                ("backend", "moved"),
                ("outcome", "failover"),
                ("code", "307"),
                ("provider", "openai")
            ]
        ),
        1.0
    );

    // With nowhere else to go, the caller learns why, and where the redirect pointed.
    let only = Harness::new(
        World::new(
            route(&[("moved", 1)], &[]),
            vec![external("moved", "openai", &redirecting, json!({}))],
        ),
        config(),
    );
    let a = only.chat().await;
    assert_eq!(a.status, 502, "{}", a.body);
    assert!(
        a.body.contains("does not follow redirects")
            && a.body
                .contains(&format!("http://127.0.0.1:{}", elsewhere.port))
            && !a.body.contains("/v1/chat/completions"),
        "{}",
        a.body
    );
    assert_eq!(elsewhere.calls(), 0, "the redirect was followed");
}

/// A provider's 401 echoes the key it was sent (OpenAI shows its first and last
/// characters); the caller reads the provider's advice, never the key.
#[tokio::test]
async fn a_providers_error_reaches_the_caller_without_the_credential_it_echoes() {
    let key = "sk-proj-AbCdEfGh0123456789wxyz";
    let echo = "Incorrect API key provided: sk-proj-****************************wxyz. You can find your API key at https://platform.openai.com/account/api-keys.";
    let up = Upstream::always(move || openai_error(401, echo, "invalid_api_key")).await;
    let mut b = external("b", "openai", &up, json!({}));
    b.spec.external.as_mut().unwrap().credentials =
        serde_json::from_value(json!({"secretRef": {"name": "key", "key": "apiKey"}})).unwrap();
    let mut world = World::new(route(&[("b", 1)], &[]), vec![b]);
    world.secrets.push(obj(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "key", "namespace": NS, "labels": {"switchyard.dev/credential": "provider"}},
        "stringData": {"apiKey": key}})));
    let h = Harness::new(world, config());
    let a = h.chat().await;
    assert_eq!(a.status, 502, "{}", a.body);
    assert!(
        a.body
            .contains("Incorrect API key provided: [redacted]. You can find your API key"),
        "{}",
        a.body
    );
    for part in [key, "wxyz", "sk-proj", "AbCdEfGh"] {
        assert!(!a.body.contains(part), "{part} in {}", a.body);
    }
    assert!(!a.body.contains("\"key\""), "no Secret name: {}", a.body);
}

/// Credentials go over plain http only when the backend says so; otherwise the backend
/// cannot take requests and nothing is sent.
#[tokio::test]
async fn credentials_never_go_over_plain_http_without_allow_insecure() {
    let up = Upstream::always(|| openai_answer("fine")).await;
    let mut b = external("b", "openai", &up, json!({}));
    let ext = b.spec.external.as_mut().unwrap();
    ext.allow_insecure = None;
    ext.credentials =
        serde_json::from_value(json!({"secretRef": {"name": "key", "key": "apiKey"}})).unwrap();
    let mut world = World::new(route(&[("b", 1)], &[]), vec![b]);
    world.secrets.push(obj(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "key", "namespace": NS, "labels": {"switchyard.dev/credential": "provider"}},
        "stringData": {"apiKey": "sk-plain-http"}})));
    let h = Harness::new(world, config());
    let a = h.chat().await;
    assert_eq!(a.status, 503, "{}", a.body);
    assert!(
        a.body.contains("over plain http without allowInsecure"),
        "{}",
        a.body
    );
    assert_eq!(up.calls(), 0);
}
