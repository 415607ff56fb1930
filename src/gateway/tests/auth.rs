//! Who may call: every endpoint behind a Tenant's key, each key limited to its tenant's
//! routes, keys taken from labelled Secrets only and rotated without a restart.

use serde_json::json;

use super::*;
use crate::gateway::auth::AuthMode;

pub(super) fn tenant(name: &str, keys: &[(&str, &str)], routes: Option<Value>) -> Tenant {
    let keys: Vec<Value> = keys
        .iter()
        .map(|(s, k)| json!({"secretRef": {"name": s, "key": k}}))
        .collect();
    let mut spec = json!({"keys": keys});
    if let Some(r) = routes {
        spec["routes"] = r;
    }
    obj(
        json!({"apiVersion": "switchyard.dev/v1alpha1", "kind": "Tenant",
        "metadata": {"name": name, "namespace": NS, "creationTimestamp": "2024-01-01T00:00:00Z"},
        "spec": spec}),
    )
}

pub(super) fn key_secret(name: &str, values: &[(&str, &str)], purpose: Option<&str>) -> Secret {
    let data: serde_json::Map<String, Value> = values
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let labels = match purpose {
        Some(p) => json!({"switchyard.dev/credential": p}),
        None => json!({}),
    };
    obj(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": NS, "labels": labels}, "stringData": data}))
}

/// Two routes, `chat` and `private` (labelled `tier: internal`), both served.
fn world(tenants: Vec<Tenant>, secrets: Vec<Secret>, up: &Upstream) -> World {
    let mut private = named_route("private", "2024-01-01T00:00:00Z", &[("b", 1)], &[]);
    private
        .metadata
        .labels
        .get_or_insert_default()
        .insert("tier".into(), "internal".into());
    let mut w = World::new(
        route(&[("b", 1)], &[]),
        vec![external("b", "openai", up, json!({}))],
    );
    w.more_routes.push(private);
    w.tenants = tenants;
    w.secrets = secrets;
    w
}

struct Call {
    status: u16,
    body: Value,
}

async fn post(url: &str, path: &str, headers: &[(&str, &str)], body: Value) -> Call {
    let mut rb = reqwest::Client::new()
        .post(format!("{url}{path}"))
        .json(&body);
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    let r = rb.send().await.unwrap();
    Call {
        status: r.status().as_u16(),
        body: r.json().await.unwrap_or(Value::Null),
    }
}

async fn get(url: &str, path: &str, headers: &[(&str, &str)]) -> Call {
    let mut rb = reqwest::Client::new().get(format!("{url}{path}"));
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    let r = rb.send().await.unwrap();
    Call {
        status: r.status().as_u16(),
        body: r.json().await.unwrap_or(Value::Null),
    }
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

#[tokio::test]
async fn every_endpoint_needs_a_tenants_key_and_says_so_in_the_callers_dialect() {
    let up = Upstream::always(|| openai_answer("fine")).await;
    let h = Harness::new(
        world(
            vec![tenant("app", &[("app-key", "key")], None)],
            vec![key_secret(
                "app-key",
                &[("key", "sk-app")],
                Some("tenant-key"),
            )],
            &up,
        ),
        config(),
    );
    let url = h.serve_api(AuthMode::Required).await;
    let wrong = bearer("sk-wrong");
    for headers in [vec![], vec![("authorization", wrong.as_str())]] {
        let a = post(&url, "/v1/chat/completions", &headers, chat("chat")).await;
        assert_eq!(a.status, 401, "{}", a.body);
        assert_eq!(
            a.body["error"]["type"], "authentication_error",
            "{}",
            a.body
        );
        let m = post(&url, "/v1/messages", &headers, chat("chat")).await;
        assert_eq!(m.status, 401);
        assert_eq!(m.body["type"], "error", "Anthropic's shape: {}", m.body);
        assert_eq!(m.body["error"]["type"], "authentication_error");
        for path in [
            "/v1/embeddings",
            "/v1/responses",
            "/v1/anything-added-later",
        ] {
            assert_eq!(
                post(&url, path, &headers, json!({})).await.status,
                401,
                "{path}"
            );
        }
        assert_eq!(get(&url, "/v1/models", &headers).await.status, 401);
    }
    assert_eq!(up.calls(), 0, "nothing went upstream");
    let no_key = post(&url, "/v1/chat/completions", &[], chat("chat")).await;
    assert!(
        no_key.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("No API key presented"),
        "{}",
        no_key.body
    );

    // Presented as each SDK presents it.
    let key = bearer("sk-app");
    let a = post(
        &url,
        "/v1/chat/completions",
        &[("authorization", &key)],
        chat("chat"),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let m = post(
        &url,
        "/v1/messages",
        &[("x-api-key", "sk-app")],
        json!({"model": "chat", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(m.status, 200, "{}", m.body);
    assert_eq!(
        h.metric(
            "switchyard_requests_total",
            &[
                ("namespace", NS),
                ("route", "chat"),
                ("backend", "b"),
                ("provider", "openai"),
                ("tenant", "app"),
                ("outcome", "success"),
                ("code", "200")
            ]
        ),
        2.0,
        "counted for the tenant"
    );
}

#[tokio::test]
async fn a_key_reaches_only_its_tenants_routes_and_lists_only_them() {
    let up = Upstream::always(|| openai_answer("fine")).await;
    let h = Harness::new(
        world(
            vec![
                tenant(
                    "named",
                    &[("keys", "named")],
                    Some(json!({"names": ["chat"]})),
                ),
                tenant(
                    "labelled",
                    &[("keys", "labelled")],
                    Some(json!({"selector": {"matchLabels": {"tier": "internal"}}})),
                ),
                tenant("all", &[("keys", "all")], None),
            ],
            vec![key_secret(
                "keys",
                &[
                    ("named", "sk-named"),
                    ("labelled", "sk-labelled"),
                    ("all", "sk-all"),
                ],
                Some("tenant-key"),
            )],
            &up,
        ),
        config(),
    );
    let url = h.serve_api(AuthMode::Required).await;
    let models = |key: &'static str| {
        let url = url.clone();
        async move {
            let auth = bearer(key);
            let l = get(&url, "/v1/models", &[("authorization", &auth)]).await;
            assert_eq!(l.status, 200);
            l.body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(models("sk-named").await, ["chat"]);
    assert_eq!(models("sk-labelled").await, ["private"]);
    assert_eq!(models("sk-all").await, ["chat", "private"]);

    let named = bearer("sk-named");
    let a = post(
        &url,
        "/v1/chat/completions",
        &[("authorization", &named)],
        chat("private"),
    )
    .await;
    // Not found, like a model that does not exist: names cannot be enumerated.
    assert_eq!(a.status, 404, "{}", a.body);
    let msg = a.body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("models for your key: chat"), "{msg}");
    let ghost = post(
        &url,
        "/v1/chat/completions",
        &[("authorization", &named)],
        chat("ghost"),
    )
    .await;
    assert_eq!(ghost.status, 404);
    assert_eq!(
        ghost.body["error"]["message"]
            .as_str()
            .unwrap()
            .replace("ghost", "private"),
        msg,
        "a forbidden model and a missing one look the same"
    );
    let responses = post(
        &url,
        "/v1/responses",
        &[("authorization", &named)],
        json!({"model": "private", "input": "hi"}),
    )
    .await;
    assert_eq!(responses.status, 404, "every endpoint scopes by tenant");
    assert_eq!(responses.body["error"]["message"].as_str().unwrap(), msg);
    let ok = post(
        &url,
        "/v1/chat/completions",
        &[("authorization", &named)],
        chat("chat"),
    )
    .await;
    assert_eq!(ok.status, 200);
    assert_eq!(up.calls(), 1);
}

#[tokio::test]
async fn keys_come_only_from_secrets_labelled_tenant_key_and_rotate_without_a_restart() {
    let up = Upstream::always(|| openai_answer("fine")).await;
    let mut h = Harness::new(
        world(
            vec![tenant(
                "app",
                &[("old", "key"), ("provider", "key"), ("plain", "key")],
                None,
            )],
            vec![
                key_secret("old", &[("key", "sk-old")], Some("tenant-key")),
                // A provider credential is never a caller's key, nor is an unlabelled Secret.
                key_secret("provider", &[("key", "sk-provider")], Some("provider")),
                key_secret("plain", &[("key", "sk-plain")], None),
            ],
            &up,
        ),
        config(),
    );
    let url = h.serve_api(AuthMode::Required).await;
    let status = |key: &'static str| {
        let url = url.clone();
        async move {
            let auth = bearer(key);
            post(
                &url,
                "/v1/chat/completions",
                &[("authorization", &auth)],
                chat("chat"),
            )
            .await
            .status
        }
    };
    assert_eq!(status("sk-old").await, 200);
    assert_eq!(status("sk-provider").await, 401);
    assert_eq!(status("sk-plain").await, 401);

    // Rotation: a new key is added to the Tenant, then the old one removed.
    apply_obj(
        &mut h.writers.2,
        key_secret("new", &[("key", "sk-new")], Some("tenant-key")),
    );
    apply_obj(
        &mut h.writers.4,
        tenant("app", &[("old", "key"), ("new", "key")], None),
    );
    h.rebuild();
    assert_eq!(status("sk-new").await, 200);
    assert_eq!(status("sk-old").await, 200);
    apply_obj(&mut h.writers.4, tenant("app", &[("new", "key")], None));
    h.rebuild();
    assert_eq!(status("sk-new").await, 200);
    assert_eq!(status("sk-old").await, 401, "a removed key stops working");
    // A changed Secret value takes the old value's place.
    apply_obj(
        &mut h.writers.2,
        key_secret("new", &[("key", "sk-newer")], Some("tenant-key")),
    );
    h.rebuild();
    assert_eq!(status("sk-new").await, 401);
    assert_eq!(status("sk-newer").await, 200);
}

#[tokio::test]
async fn with_auth_disabled_anyone_may_use_every_route_as_anonymous() {
    let up = Upstream::always(|| openai_answer("fine")).await;
    let h = Harness::new(world(vec![], vec![], &up), config());
    let url = h.serve_api(AuthMode::Disabled).await;
    assert_eq!(
        post(&url, "/v1/chat/completions", &[], chat("private"))
            .await
            .status,
        200
    );
    assert_eq!(
        h.metric(
            "switchyard_requests_total",
            &[
                ("namespace", NS),
                ("route", "private"),
                ("backend", "b"),
                ("provider", "openai"),
                ("tenant", "anonymous"),
                ("outcome", "success"),
                ("code", "200")
            ]
        ),
        1.0
    );
    let unknown = get(&url, "/v2/nothing", &[]).await;
    assert_eq!(unknown.status, 404);
    assert!(
        unknown.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("POST /v1/chat/completions"),
        "{}",
        unknown.body
    );
}

fn apply_obj<K: kube::Resource<DynamicType = ()> + Clone>(w: &mut Writer<K>, o: K) {
    w.apply_watcher_event(&watcher::Event::Apply(o));
}
