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

/// A CA of the test's own and a certificate it issued for `localhost`, as an https upstream
/// serves it.
fn private_ca() -> (String, Arc<tokio_rustls::rustls::ServerConfig>) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca = CertificateParams::new(vec![]).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".into()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let server = tokio_rustls::rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![leaf.der().clone()],
        rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
    .unwrap();
    (ca.pem(), Arc::new(server))
}

/// A backend at `https://localhost:<port>` whose certificate is verified against the CA in
/// Secret `ca` (key `ca.crt`), when `with_ca`.
fn private_backend(name: &str, up: &Upstream, with_ca: bool) -> InferenceBackend {
    let mut b = external(name, "openai", up, json!({}));
    let ext = b.spec.external.as_mut().unwrap();
    ext.base_url = format!("https://localhost:{}/v1", up.port);
    ext.allow_insecure = None;
    if with_ca {
        ext.tls = Some(
            serde_json::from_value(json!({"caSecretRef": {"name": "ca", "key": "ca.crt"}}))
                .unwrap(),
        );
    }
    b
}

fn ca_secret(pem: &str, label: &str) -> Secret {
    obj(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "ca", "namespace": NS, "labels": {"switchyard.dev/credential": label}},
        "stringData": {"ca.crt": pem}}))
}

/// A backend behind a private CA: its certificate is verified against the CA its backend
/// names and nothing else. Without that CA (the system's roots do not know it), with another
/// CA, or with a Secret not labelled as a CA bundle, no request reaches it.
#[tokio::test]
async fn a_backend_behind_a_private_ca_is_verified_against_that_ca_alone() {
    let (ca, server) = private_ca();
    let (other_ca, _) = private_ca();
    let up = Upstream::start_tls(server, |_, _| openai_answer("private")).await;
    let serve = |backend: InferenceBackend, secret: Option<Secret>| {
        let mut world = World::new(route(&[("private", 1)], &[]), vec![backend]);
        world.secrets.extend(secret);
        Harness::new(world, config())
    };

    let trusted = serve(
        private_backend("private", &up, true),
        Some(ca_secret(&ca, "ca-bundle")),
    );
    let a = trusted.chat().await;
    assert_eq!(
        (a.status, a.backend.as_deref()),
        (200, Some("private")),
        "{}",
        a.body
    );
    assert_eq!(up.calls(), 1);

    // The system's roots do not know the private CA.
    let a = serve(private_backend("private", &up, false), None)
        .chat()
        .await;
    assert_eq!(a.status, 502, "{}", a.body);
    assert!(a.body.contains("certificate"), "{}", a.body);
    // A bundle replaces the system's roots; another CA's bundle does not vouch for this host.
    let a = serve(
        private_backend("private", &up, true),
        Some(ca_secret(&other_ca, "ca-bundle")),
    )
    .chat()
    .await;
    assert_eq!(a.status, 502, "{}", a.body);
    assert!(a.body.contains("certificate"), "{}", a.body);
    assert_eq!(up.calls(), 1, "a request got past an unverified handshake");

    // Only Secrets that opt in as CA bundles are read; the message names no Secret.
    let a = serve(
        private_backend("private", &up, true),
        Some(ca_secret(&ca, "provider")),
    )
    .chat()
    .await;
    assert_eq!(a.status, 503, "{}", a.body);
    assert!(a.body.contains("CA bundle"), "{}", a.body);
    assert!(!a.body.contains("\"ca\""), "{}", a.body);
    // Nor is a Secret that holds no certificate.
    let a = serve(
        private_backend("private", &up, true),
        Some(ca_secret("not a certificate", "ca-bundle")),
    )
    .chat()
    .await;
    assert_eq!(a.status, 503, "{}", a.body);
}
