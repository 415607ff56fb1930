//! The endpoints besides chat that the SDKs call: model lookup, legacy completions, token
//! counting; the headers that cross the gateway; and the answer to a path it does not serve.

use std::sync::Mutex;

use axum::http::{HeaderName, HeaderValue, Uri};
use serde_json::json;

use super::auth::{key_secret, tenant};
use super::*;
use crate::gateway::auth::AuthMode;

/// One request an upstream received.
#[derive(Clone)]
struct Seen {
    path: String,
    headers: HeaderMap,
    body: Value,
}

/// An upstream on loopback that records what it receives and answers by path.
struct Recording {
    up: Upstream,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Recording {
    async fn start(answer: impl Fn(&str, &Value) -> Response + Send + Sync + 'static) -> Self {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let answer = Arc::new(answer);
        let log = seen.clone();
        let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
            let (answer, log) = (answer.clone(), log.clone());
            async move {
                let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let path = uri.path().to_owned();
                let resp = answer(&path, &body);
                log.lock().unwrap().push(Seen {
                    path,
                    headers,
                    body,
                });
                resp
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            up: Upstream::at(port),
            seen,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn json_reply(status: u16, v: Value) -> Response {
    (StatusCode::from_u16(status).unwrap(), axum::Json(v)).into_response()
}

fn text_completion(text: &str) -> Value {
    json!({"id": "cmpl-1", "object": "text_completion", "created": 1, "model": "m",
           "choices": [{"text": text, "index": 0, "logprobs": null, "finish_reason": "stop"}],
           "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}})
}

/// A legacy completion stream: two text chunks, the finish, the usage chunk, `[DONE]`.
fn completion_stream() -> Response {
    let chunk = |text: &str, finish: Value| {
        sse(&json!({"id": "cmpl-1", "object": "text_completion", "created": 1, "model": "m",
                    "choices": [{"text": text, "index": 0, "logprobs": null, "finish_reason": finish}]})
        .to_string())
    };
    let body = [
        chunk("Hello", Value::Null),
        chunk(" there", Value::Null),
        chunk("", json!("stop")),
        sse(&json!({"id": "cmpl-1", "object": "text_completion", "created": 1, "model": "m", "choices": [],
                    "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}})
        .to_string()),
        sse("[DONE]"),
    ]
    .concat();
    Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(Body::from(body))
        .unwrap()
}

fn legacy(stream: bool) -> Value {
    json!({"model": "chat", "prompt": "Say hello", "max_tokens": 5, "stream": stream})
}

fn count_request() -> Value {
    json!({"model": "chat", "system": "You are terse.",
           "messages": [{"role": "user", "content": "How many tokens is this?"}],
           "tools": [{"name": "get_weather", "description": "Weather of a city", "input_schema": {"type": "object"}}]})
}

#[tokio::test]
async fn legacy_completions_pass_through_to_openai_and_vllm_backends_streamed_and_not() {
    let answer = |_: &str, body: &Value| {
        if body["stream"] == true {
            completion_stream()
        } else {
            json_reply(200, text_completion("Hello there"))
        }
    };
    let hosted = Recording::start(answer).await;
    let pod = Recording::start(answer).await;
    let (vllm, slice) = self_hosted("vllm", &[&pod.up]);
    let mut w = World::new(
        route(&[("hosted", 1)], &[]),
        vec![external("hosted", "openai", &hosted.up, json!({})), vllm],
    );
    w.more_routes.push(named_route(
        "local",
        "2024-01-01T00:00:00Z",
        &[("vllm", 1)],
        &[],
    ));
    w.slices.push(slice);
    let h = Harness::new(w, config());

    let a = h
        .call(Dialect::Openai, Operation::Completions, legacy(false))
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let v: Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["choices"][0]["text"], "Hello there");
    let sent = &hosted.seen()[0];
    assert_eq!(sent.path, "/v1/completions");
    assert_eq!(sent.body["model"], "hosted-model");
    assert_eq!(sent.body["prompt"], "Say hello");

    let s = h
        .call(Dialect::Openai, Operation::Completions, legacy(true))
        .await;
    assert_eq!(s.status, 200, "{}", s.body);
    assert!(s.body.contains(r#""text":"Hello""#), "{}", s.body);
    assert!(s.body.contains(r#""text":" there""#), "{}", s.body);
    assert!(s.body.ends_with("data: [DONE]\n\n"), "{}", s.body);
    assert!(
        !s.body.contains("\"usage\""),
        "the caller did not ask for the usage chunk: {}",
        s.body
    );
    assert_eq!(
        hosted.seen()[1].body["stream_options"]["include_usage"],
        true,
        "the gateway asks for usage, for its metrics"
    );
    // Metered like chat: both answers' tokens.
    let tokens = |backend, kind| {
        h.metric(
            "switchyard_tokens_total",
            &[("backend", backend), ("type", kind)],
        )
    };
    assert_eq!(
        (tokens("hosted", "input"), tokens("hosted", "output")),
        (8.0, 4.0)
    );
    assert_eq!(h.attempts("hosted", "success", Some("200")), 2.0);

    let mut to_vllm = legacy(true);
    to_vllm["model"] = json!("local");
    let l = h
        .call(Dialect::Openai, Operation::Completions, to_vllm)
        .await;
    assert_eq!(l.status, 200, "{}", l.body);
    assert!(l.body.contains(r#""text":" there""#), "{}", l.body);
    assert_eq!(pod.seen()[0].path, "/v1/completions");
    assert_eq!(pod.seen()[0].body["model"], "llama");
    assert_eq!(tokens("vllm", "output"), 2.0);
}

#[tokio::test]
async fn legacy_completions_go_to_the_routes_openai_backends_and_explain_when_it_has_none() {
    let hosted = Recording::start(|_, _| json_reply(200, text_completion("ok"))).await;
    let claude = Recording::start(|_, _| json_reply(500, json!({}))).await;
    let mut w = World::new(
        route(&[("claude", 50), ("hosted", 50)], &[]),
        vec![
            external("hosted", "openai", &hosted.up, json!({})),
            external("claude", "anthropic", &claude.up, json!({})),
        ],
    );
    w.more_routes.push(named_route(
        "only-claude",
        "2024-01-01T00:00:00Z",
        &[("claude", 1)],
        &[],
    ));
    let h = Harness::new(w, config());
    for _ in 0..6 {
        let a = h
            .call(Dialect::Openai, Operation::Completions, legacy(false))
            .await;
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.backend.as_deref(), Some("hosted"));
    }
    assert!(claude.seen().is_empty());
    assert_eq!(
        h.attempts("claude", "client_error", None),
        0.0,
        "the Anthropic half of the split is not landed on, so not counted as refusing"
    );

    let mut only = legacy(false);
    only["model"] = json!("only-claude");
    let e = h.call(Dialect::Openai, Operation::Completions, only).await;
    assert_eq!(e.status, 400, "{}", e.body);
    let v: Value = serde_json::from_str(&e.body).unwrap();
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("legacy completions (POST /v1/completions) need an OpenAI-dialect backend"),
        "{msg}"
    );
    assert!(claude.seen().is_empty());
}

#[tokio::test]
async fn a_count_goes_to_anthropic_or_vllms_tokenizer_and_is_estimated_otherwise() {
    let claude = Recording::start(|_, _| json_reply(200, json!({"input_tokens": 42}))).await;
    let pod = Recording::start(|_, _| {
        json_reply(
            200,
            json!({"count": 17, "max_model_len": 8192, "tokens": [1, 2, 3]}),
        )
    })
    .await;
    let hosted = Recording::start(|_, _| json_reply(500, json!({}))).await;
    let (vllm, slice) = self_hosted("vllm", &[&pod.up]);
    let mut w = World::new(
        route(&[("claude", 1)], &[]),
        vec![
            external("claude", "anthropic", &claude.up, json!({})),
            external("hosted", "openai", &hosted.up, json!({})),
            vllm,
        ],
    );
    w.slices.push(slice);
    for (name, backend) in [("local", "vllm"), ("gpt", "hosted")] {
        w.more_routes.push(named_route(
            name,
            "2024-01-01T00:00:00Z",
            &[(backend, 1)],
            &[],
        ));
    }
    let h = Harness::new(w, config());
    let url = h.serve_api(AuthMode::Disabled).await;
    let count = |model: &str| {
        let mut body = count_request();
        body["model"] = json!(model);
        let url = url.clone();
        async move {
            let r = reqwest::Client::new()
                .post(format!("{url}/v1/messages/count_tokens"))
                .header("anthropic-version", "2023-06-01")
                .json(&body)
                .send()
                .await
                .unwrap();
            let estimate = r.headers().get("x-switchyard-estimate").cloned();
            (
                r.status().as_u16(),
                estimate,
                r.json::<Value>().await.unwrap(),
            )
        }
    };

    let (status, estimate, body) = count("chat").await;
    assert_eq!((status, estimate), (200, None), "{body}");
    assert_eq!(body, json!({"input_tokens": 42}));
    let sent = &claude.seen()[0];
    assert_eq!(sent.path, "/v1/messages/count_tokens");
    assert_eq!(sent.body["model"], "claude-model");
    assert_eq!(sent.body["tools"][0]["name"], "get_weather");

    let (status, estimate, body) = count("local").await;
    assert_eq!((status, estimate), (200, None), "{body}");
    assert_eq!(body, json!({"input_tokens": 17}));
    assert_eq!(pod.seen()[0].path, "/tokenize");
    let sent = &pod.seen()[0].body;
    assert_eq!(sent["model"], "llama");
    assert_eq!(
        sent["messages"][0],
        json!({"role": "system", "content": "You are terse."})
    );
    assert_eq!(sent["tools"][0]["function"]["name"], "get_weather");

    let (status, estimate, body) = count("gpt").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(estimate.unwrap(), "true");
    let n = body["input_tokens"].as_u64().unwrap();
    assert!((20..60).contains(&n), "{n}");
    assert!(
        hosted.seen().is_empty(),
        "nothing asked of a backend that cannot count"
    );

    // A count is not inference: no tokens, no cost, no attempts in the analysis' series.
    assert_eq!(h.series("switchyard_tokens_total", &[]), None);
    assert_eq!(h.series("switchyard_requests_total", &[]), None);
}

#[tokio::test]
async fn a_count_fails_over_as_chat_does() {
    let broken = Recording::start(|_, _| {
        json_reply(
            503,
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}),
        )
    })
    .await;
    let good = Recording::start(|_, _| json_reply(200, json!({"input_tokens": 9}))).await;
    let h = Harness::new(
        World::new(
            route(&[("a", 1)], &["b"]),
            vec![
                external("a", "anthropic", &broken.up, json!({})),
                external("b", "anthropic", &good.up, json!({})),
            ],
        ),
        config(),
    );
    let a = h
        .call(Dialect::Anthropic, Operation::CountTokens, count_request())
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.backend.as_deref(), Some("b"));
    assert_eq!(broken.seen().len(), 1);
}

#[tokio::test]
async fn a_model_is_found_in_the_callers_shape_only_by_a_key_that_may_use_it() {
    let up = Upstream::always(|| openai_answer("fine")).await;
    let mut w = World::new(
        route(&[("b", 1)], &[]),
        vec![external("b", "openai", &up, json!({}))],
    );
    w.more_routes.push(named_route(
        "private",
        "2024-01-01T00:00:00Z",
        &[("b", 1)],
        &[],
    ));
    w.tenants = vec![tenant(
        "named",
        &[("keys", "named")],
        Some(json!({"names": ["chat"]})),
    )];
    w.secrets = vec![key_secret(
        "keys",
        &[("named", "sk-named")],
        Some("tenant-key"),
    )];
    let h = Harness::new(w, config());
    let url = h.serve_api(AuthMode::Required).await;
    let get = |path: &str, anthropic: bool| {
        let mut rb = reqwest::Client::new().get(format!("{url}{path}"));
        rb = if anthropic {
            rb.header("x-api-key", "sk-named")
                .header("anthropic-version", "2023-06-01")
        } else {
            rb.header("authorization", "Bearer sk-named")
        };
        async move {
            let r = rb.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };

    let (status, m) = get("/v1/models/chat", false).await;
    assert_eq!(status, 200, "{m}");
    assert_eq!(
        m,
        json!({"id": "chat", "object": "model", "created": 1704067200, "owned_by": "switchyard"})
    );
    let (status, m) = get("/v1/models/chat", true).await;
    assert_eq!(status, 200, "{m}");
    assert_eq!(
        m,
        json!({"type": "model", "id": "chat", "display_name": "chat", "created_at": "2024-01-01T00:00:00Z", "lifecycle": "active"})
    );
    let (status, list) = get("/v1/models", true).await;
    assert_eq!(status, 200);
    assert_eq!(list["has_more"], false);
    assert_eq!(
        (&list["first_id"], &list["last_id"]),
        (&json!("chat"), &json!("chat"))
    );
    assert_eq!(list["data"][0]["type"], "model");

    // Another tenant's model and a model that does not exist look the same.
    let (status, private) = get("/v1/models/private", false).await;
    assert_eq!(status, 404, "{private}");
    let (_, ghost) = get("/v1/models/ghost", false).await;
    let msg = private["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("does not exist or you do not have access"),
        "{msg}"
    );
    assert_eq!(
        ghost["error"]["message"]
            .as_str()
            .unwrap()
            .replace("ghost", "private"),
        msg
    );
    let (status, a) = get("/v1/models/private", true).await;
    assert_eq!(status, 404);
    assert_eq!(a["type"], "error");
    assert_eq!(a["error"]["type"], "not_found_error");
    // Behind the key check like everything else.
    let r = reqwest::get(format!("{url}/v1/models/chat")).await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
}

#[tokio::test]
async fn options_reach_only_backends_of_their_dialect_never_the_callers_key() {
    let gpt = Recording::start(|_, _| {
        let mut r = json_reply(200, text_completion("ok"));
        r.headers_mut().insert(
            "x-ratelimit-remaining-requests",
            HeaderValue::from_static("41"),
        );
        r
    })
    .await;
    let claude = Recording::start(|_, _| json_reply(200, json!({"input_tokens": 3}))).await;
    let mut w = World::new(
        route(&[("gpt", 1)], &[]),
        vec![
            external("gpt", "openai", &gpt.up, json!({})),
            external("claude", "anthropic", &claude.up, json!({})),
        ],
    );
    w.more_routes.push(named_route(
        "claude",
        "2024-01-01T00:00:00Z",
        &[("claude", 1)],
        &[],
    ));
    w.tenants = vec![tenant("app", &[("keys", "app")], None)];
    w.secrets = vec![key_secret("keys", &[("app", "sk-app")], Some("tenant-key"))];
    let h = Harness::new(w, config());
    let url = h.serve_api(AuthMode::Required).await;
    let options = [
        ("openai-organization", "org-1"),
        ("openai-project", "proj-1"),
        ("anthropic-beta", "token-counting-2024-11-01"),
    ];
    let mut rb = reqwest::Client::new()
        .post(format!("{url}/v1/completions"))
        .header("authorization", "Bearer sk-app")
        .json(&legacy(false));
    for (k, v) in options {
        rb = rb.header(k, v);
    }
    let r = rb.send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["x-ratelimit-remaining-requests"], "41");
    let mut rb = reqwest::Client::new()
        .post(format!("{url}/v1/messages/count_tokens"))
        .header("x-api-key", "sk-app")
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "claude", "messages": [{"role": "user", "content": "hi"}]}));
    for (k, v) in options {
        rb = rb.header(k, v);
    }
    assert_eq!(rb.send().await.unwrap().status().as_u16(), 200);

    let to_gpt = &gpt.seen()[0].headers;
    assert_eq!(to_gpt["openai-organization"], "org-1");
    assert_eq!(to_gpt["openai-project"], "proj-1");
    assert!(to_gpt.get("anthropic-beta").is_none());
    let to_claude = &claude.seen()[0].headers;
    assert_eq!(to_claude["anthropic-beta"], "token-counting-2024-11-01");
    assert!(to_claude.get("openai-organization").is_none());
    assert!(to_claude.get("openai-project").is_none());
    for sent in [to_gpt, to_claude] {
        let leaked = sent
            .iter()
            .any(|(_, v)| v.to_str().is_ok_and(|v| v.contains("sk-app")));
        assert!(!leaked, "the caller's key went upstream: {sent:?}");
    }
}

#[tokio::test]
async fn an_upstreams_rate_limit_headers_reach_the_caller_on_errors_too() {
    let limited = Recording::start(|_, _| {
        let mut r = json_reply(
            429,
            json!({"error": {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}}),
        );
        let h = r.headers_mut();
        h.insert("x-ratelimit-remaining-requests", HeaderValue::from_static("0"));
        h.insert("x-ratelimit-reset-requests", HeaderValue::from_static("6s"));
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("6"));
        r
    })
    .await;
    let refusing = Recording::start(|_, _| {
        let mut r = json_reply(
            400,
            json!({"type": "error", "error": {"type": "invalid_request_error", "message": "bad"}}),
        );
        r.headers_mut().insert(
            HeaderName::from_static("anthropic-ratelimit-requests-remaining"),
            HeaderValue::from_static("12"),
        );
        r
    })
    .await;
    let mut w = World::new(
        route(&[("limited", 1)], &[]),
        vec![
            external("limited", "openai", &limited.up, json!({})),
            external("refusing", "anthropic", &refusing.up, json!({})),
        ],
    );
    w.more_routes.push(named_route(
        "claude",
        "2024-01-01T00:00:00Z",
        &[("refusing", 1)],
        &[],
    ));
    let h = Harness::new(w, config());
    let url = h.serve_api(AuthMode::Disabled).await;
    let r = reqwest::Client::new()
        .post(format!("{url}/v1/chat/completions"))
        .json(&json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert_eq!(r.headers()["x-ratelimit-remaining-requests"], "0");
    assert_eq!(r.headers()["x-ratelimit-reset-requests"], "6s");
    assert_eq!(r.headers()[header::RETRY_AFTER], "6");
    // Not retryable: the caller's mistake, answered at once, with the headers.
    let r = reqwest::Client::new()
        .post(format!("{url}/v1/messages"))
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "claude", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(r.headers()["anthropic-ratelimit-requests-remaining"], "12");
}

#[tokio::test]
async fn an_unknown_path_or_method_names_every_endpoint_in_the_callers_dialect() {
    let up = Upstream::always(|| openai_answer("fine")).await;
    let h = Harness::new(
        World::new(
            route(&[("b", 1)], &[]),
            vec![external("b", "openai", &up, json!({}))],
        ),
        config(),
    );
    let url = h.serve_api(AuthMode::Disabled).await;
    let c = reqwest::Client::new();
    let every = [
        "POST /v1/chat/completions",
        "POST /v1/messages",
        "POST /v1/messages/count_tokens",
        "POST /v1/responses",
        "POST /v1/completions",
        "POST /v1/embeddings",
        "GET /v1/models",
        "GET /v1/models/{id}",
    ];
    let r = c.get(format!("{url}/v1/batches")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let v: Value = r.json().await.unwrap();
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("GET /v1/batches is not an endpoint"),
        "{msg}"
    );
    for e in every {
        assert!(msg.contains(e), "{e} missing from: {msg}");
    }
    let r = c
        .post(format!("{url}/v1/nope"))
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("GET /v1/models/{id}"),
        "{v}"
    );
    let r = c
        .delete(format!("{url}/v1/models/chat"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    assert_eq!(r.headers()[header::ALLOW], "GET");
    let r = c.get(format!("{url}/v1/completions")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 405);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("POST /v1/messages/count_tokens"),
        "{v}"
    );
}
