//! Request-level tests of the gateway: real HTTP to scripted upstreams on loopback, caches
//! filled by hand instead of by watches and built into the routing snapshot, metrics read back from the registry. Each test states
//! one behaviour a caller or the controller's analysis would notice.

mod auth;
mod billing;
mod client;
mod endpoints;
mod evaluation;
mod failover;
mod limits;
mod outliers;
mod overhead;
mod passthrough;
mod pricing;
mod responses;
mod structured;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store, store::Writer};
use kube::runtime::watcher;
use prometheus::proto::MetricType;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::auth::Caller;
use super::cache::Caches;
use super::metrics::Metrics;
use super::proxy::{Config, Gateway};
use super::snapshot::Snapshots;
use super::upstream::Operation;
use crate::api::{Dialect, InferenceBackend, ModelRoute, Tenant};

pub const NS: &str = "team";

/// What a scripted upstream answers to one call.
pub enum Reply {
    Json(u16, Value),
    /// A status line and headers at once, the body only after `delay` (a slow 2xx).
    SlowBody(u16, Duration, String),
    /// A 200 with a body that is not JSON.
    Garbage,
    /// 429 with `Retry-After` in seconds.
    RateLimited(u64),
    /// Server-sent events, each after its delay.
    Sse(Vec<(Duration, String)>),
    /// A redirect with this status to this location.
    Redirect(u16, String),
}

type Script = dyn Fn(usize, &Value) -> Reply + Send + Sync;

/// An upstream on loopback answering every path by its script; counts its calls.
pub struct Upstream {
    pub port: u16,
    calls: Arc<AtomicUsize>,
}

impl Upstream {
    pub async fn start(script: impl Fn(usize, &Value) -> Reply + Send + Sync + 'static) -> Self {
        Self::serve(script, None).await
    }

    /// Serves https with `tls` (a certificate the test's own CA issued).
    pub async fn start_tls(
        tls: Arc<tokio_rustls::rustls::ServerConfig>,
        script: impl Fn(usize, &Value) -> Reply + Send + Sync + 'static,
    ) -> Self {
        Self::serve(script, Some(tokio_rustls::TlsAcceptor::from(tls))).await
    }

    async fn serve(
        script: impl Fn(usize, &Value) -> Reply + Send + Sync + 'static,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> Self {
        let calls = Arc::new(AtomicUsize::new(0));
        let script: Arc<Script> = Arc::new(script);
        let counter = calls.clone();
        let app = axum::Router::new().fallback(move |body: Bytes| {
            let (script, counter) = (script.clone(), counter.clone());
            async move {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                respond(script(n, &req))
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        match tls {
            None => {
                tokio::spawn(async move { axum::serve(listener, app).await });
            }
            Some(acceptor) => {
                tokio::spawn(async move {
                    while let Ok((tcp, _)) = listener.accept().await {
                        let (acceptor, app) = (acceptor.clone(), app.clone());
                        tokio::spawn(async move {
                            // A client that refuses the certificate ends the handshake here.
                            let Ok(stream) = acceptor.accept(tcp).await else {
                                return;
                            };
                            let service = hyper_util::service::TowerToHyperService::new(app);
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                                .await;
                        });
                    }
                });
            }
        }
        Self { port, calls }
    }

    /// Always the same answer.
    pub async fn always(reply: impl Fn() -> Reply + Send + Sync + 'static) -> Self {
        Self::start(move |_, _| reply()).await
    }

    /// An upstream served by the test itself on `port`.
    pub fn at(port: u16) -> Self {
        Self {
            port,
            calls: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

fn respond(reply: Reply) -> Response {
    match reply {
        Reply::Json(status, v) => (
            StatusCode::from_u16(status).unwrap(),
            axum::Json(v),
        )
            .into_response(),
        Reply::RateLimited(secs) => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, secs.to_string())],
            axum::Json(json!({"error": {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}})),
        )
            .into_response(),
        Reply::Garbage => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            "{\"id\": \"x\", \"object\": ",
        )
            .into_response(),
        Reply::SlowBody(status, delay, body) => {
            let stream = futures::stream::once(async move {
                tokio::time::sleep(delay).await;
                Ok::<_, std::convert::Infallible>(Bytes::from(body))
            });
            Response::builder()
                .status(status)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from_stream(stream))
                .unwrap()
        }
        Reply::Redirect(status, location) => (
            StatusCode::from_u16(status).unwrap(),
            [(header::LOCATION, location)],
        )
            .into_response(),
        Reply::Sse(events) => {
            let stream = futures::stream::iter(events).then(|(delay, ev)| async move {
                tokio::time::sleep(delay).await;
                Ok::<_, std::convert::Infallible>(Bytes::from(ev))
            });
            Response::builder()
                .status(200)
                .header(header::CONTENT_TYPE, "text/event-stream")
                .body(Body::from_stream(stream))
                .unwrap()
        }
    }
}

use futures::StreamExt;

pub fn openai_answer(text: &str) -> Reply {
    Reply::Json(
        200,
        json!({"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
               "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
               "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}),
    )
}

pub fn openai_embedding() -> Reply {
    Reply::Json(
        200,
        json!({"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.5, 0.5]}],
               "model": "e", "usage": {"prompt_tokens": 1, "total_tokens": 1}}),
    )
}

pub fn openai_error(status: u16, message: &str, code: &str) -> Reply {
    Reply::Json(
        status,
        json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": code}}),
    )
}

pub fn sse(data: &str) -> String {
    format!("data: {data}\n\n")
}

pub fn sse_event(event: &str, data: Value) -> String {
    format!("event: {event}\ndata: {data}\n\n")
}

/// An OpenAI stream: the role-only chunk, one chunk per word, the finish chunk, `[DONE]`.
pub fn openai_stream(words: &[&str], gap: Duration) -> Vec<(Duration, String)> {
    let chunk = |delta: Value, finish: Value| {
        sse(
            &json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
            .to_string(),
        )
    };
    let mut out = vec![(
        Duration::ZERO,
        chunk(json!({"role": "assistant", "content": ""}), Value::Null),
    )];
    for w in words {
        out.push((gap, chunk(json!({"content": w}), Value::Null)));
    }
    out.push((Duration::ZERO, chunk(json!({}), json!("stop"))));
    out.push((Duration::ZERO, sse("[DONE]")));
    out
}

/// The events an Anthropic stream sends before any content.
pub fn anthropic_preamble() -> Vec<(Duration, String)> {
    vec![
        (
            Duration::ZERO,
            sse_event(
                "message_start",
                json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
                       "model": "c", "content": [], "stop_reason": null, "stop_sequence": null,
                       "usage": {"input_tokens": 3, "output_tokens": 1}}}),
            ),
        ),
        (
            Duration::ZERO,
            sse_event(
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ),
        ),
        (Duration::ZERO, sse_event("ping", json!({"type": "ping"}))),
    ]
}

pub fn anthropic_overloaded() -> (Duration, String) {
    (
        Duration::ZERO,
        sse_event(
            "error",
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        ),
    )
}

/// An external backend served by `up`.
pub fn external(name: &str, dialect: &str, up: &Upstream, extra: Value) -> InferenceBackend {
    let base = if dialect == "openai" {
        format!("http://127.0.0.1:{}/v1", up.port)
    } else {
        format!("http://127.0.0.1:{}", up.port)
    };
    // Upstreams are on loopback: credentials may go over plain http here.
    let mut spec = json!({"external": {"dialect": dialect, "baseUrl": base, "model": format!("{name}-model"), "allowInsecure": true}});
    merge(&mut spec, extra);
    obj(
        json!({"apiVersion": "switchyard.dev/v1alpha1", "kind": "InferenceBackend",
               "metadata": {"name": name, "namespace": NS}, "spec": spec}),
    )
}

/// A self-hosted backend whose warmed-up, ready pods are the given upstreams.
pub fn self_hosted(name: &str, pods: &[&Upstream]) -> (InferenceBackend, EndpointSlice) {
    let endpoints: Vec<Value> = pods
        .iter()
        .enumerate()
        .map(|(i, p)| json!({"pod": format!("{name}-{i}"), "address": format!("127.0.0.1:{}", p.port)}))
        .collect();
    let ib = obj(
        json!({"apiVersion": "switchyard.dev/v1alpha1", "kind": "InferenceBackend",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"selfHosted": {"runtime": "vllm", "model": "llama", "replicas": pods.len()}},
        "status": {"endpoints": endpoints}}),
    );
    let slice = obj(
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{name}-abc"), "namespace": NS, "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": true}}]}),
    );
    (ib, slice)
}

/// A route whose split in effect is `weights`, with fallback tiers.
pub fn route(weights: &[(&str, i32)], fallback: &[&str]) -> ModelRoute {
    named_route("chat", "2024-01-01T00:00:00Z", weights, fallback)
}

/// A route named `name` serving the model of the same name, created at `created`.
pub fn named_route(
    name: &str,
    created: &str,
    weights: &[(&str, i32)],
    fallback: &[&str],
) -> ModelRoute {
    let split: Vec<Value> = weights
        .iter()
        .map(|(n, w)| json!({"name": n, "weight": w}))
        .collect();
    let fallback: Vec<Value> = fallback.iter().map(|n| json!({"name": n})).collect();
    obj(
        json!({"apiVersion": "switchyard.dev/v1alpha1", "kind": "ModelRoute",
        "metadata": {"name": name, "namespace": NS, "creationTimestamp": created},
        "spec": {"model": name, "backends": split, "fallback": fallback},
        "status": {"weights": split, "stable": split}}),
    )
}

fn merge(into: &mut Value, extra: Value) {
    if let (Some(a), Value::Object(b)) = (into.as_object_mut(), extra) {
        a.extend(b);
    }
}

pub fn obj<K: DeserializeOwned>(v: Value) -> K {
    serde_json::from_value(v).expect("test object")
}

fn store<K>(objects: Vec<K>) -> (Store<K>, Writer<K>)
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    let (store, mut writer) = reflector::store();
    for o in objects {
        writer.apply_watcher_event(&watcher::Event::Apply(o));
    }
    (store, writer)
}

/// The writers of the caches, in the order of `Caches`' fields.
pub type Writers = (
    Writer<ModelRoute>,
    Writer<InferenceBackend>,
    Writer<Secret>,
    Writer<EndpointSlice>,
    Writer<Tenant>,
);

/// A gateway over a snapshot of fixed caches, with its own metrics registry.
pub struct Harness {
    pub gw: Arc<Gateway>,
    pub registry: prometheus::Registry,
    /// The caches the snapshot is built from; change them through `writers`, then `rebuild`.
    pub caches: Caches,
    pub writers: Writers,
}

pub struct World {
    pub route: ModelRoute,
    /// Routes besides `route`.
    pub more_routes: Vec<ModelRoute>,
    pub backends: Vec<InferenceBackend>,
    pub secrets: Vec<Secret>,
    pub slices: Vec<EndpointSlice>,
    pub tenants: Vec<Tenant>,
}

impl World {
    pub fn new(route: ModelRoute, backends: Vec<InferenceBackend>) -> Self {
        Self {
            route,
            more_routes: vec![],
            backends,
            secrets: vec![],
            tenants: vec![],
            slices: vec![],
        }
    }
}

pub fn config() -> Config {
    Config {
        max_body_bytes: 1 << 20,
        request_timeout: Duration::from_secs(10),
        max_attempts: 3,
        ..Config::default()
    }
}

impl Harness {
    pub fn new(world: World, cfg: Config) -> Self {
        let mut routes = world.more_routes;
        routes.insert(0, world.route);
        let (routes, w1) = store(routes);
        let (backends, w2) = store(world.backends);
        let (secrets, w3) = store(world.secrets);
        let (slices, w4) = store(world.slices);
        let (tenants, w5) = store(world.tenants);
        let registry = prometheus::Registry::new();
        let metrics = Arc::new(Metrics::register(&registry).unwrap());
        let caches = Caches {
            routes: routes.into(),
            backends: backends.into(),
            secrets: secrets.into(),
            slices: slices.into(),
            tenants: tenants.into(),
        };
        let snapshots = Arc::new(Snapshots::new(metrics.clone(), cfg.outliers));
        snapshots.rebuild(&caches);
        let gw = Arc::new(Gateway::new(snapshots, metrics, cfg).unwrap());
        Self {
            gw,
            registry,
            caches,
            writers: (w1, w2, w3, w4, w5),
        }
    }

    /// Serves the gateway's API router (the key check included) on loopback; its base URL.
    pub async fn serve_api(&self, mode: super::auth::AuthMode) -> String {
        self.serve_api_limited(mode, 1_000).await
    }

    /// `serve_api` with at most `max_in_flight` requests served at once.
    pub async fn serve_api_limited(
        &self,
        mode: super::auth::AuthMode,
        max_in_flight: usize,
    ) -> String {
        self.serve_api_with(mode, max_in_flight, None).await
    }

    /// `serve_api` accepting evaluation replays verified by `evaluations`.
    pub async fn serve_api_with(
        &self,
        mode: super::auth::AuthMode,
        max_in_flight: usize,
        evaluations: Option<Arc<super::evaluation::Evaluations>>,
    ) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = super::api_router(self.gw.clone(), mode, max_in_flight, evaluations);
        tokio::spawn(crate::serve::serve_on(
            listener,
            app,
            crate::serve::Limits::default(),
            std::future::pending(),
        ));
        url
    }

    /// Builds the next routing snapshot from the caches as they are now.
    pub fn rebuild(&self) -> u64 {
        self.gw.snapshots.rebuild(&self.caches)
    }

    /// Sends one request as `caller` and returns status, backend header and body text.
    pub async fn call(&self, caller: Dialect, op: Operation, body: Value) -> Answer {
        let resp = self
            .gw
            .clone()
            .serve(
                Arc::new(Caller::anonymous()),
                caller,
                op,
                HeaderMap::new(),
                Body::from(body.to_string()),
            )
            .await;
        let status = resp.status().as_u16();
        let backend = resp
            .headers()
            .get("x-switchyard-backend")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = tokio::time::timeout(
            Duration::from_secs(20),
            axum::body::to_bytes(resp.into_body(), usize::MAX),
        )
        .await
        .expect("the answer ends")
        .unwrap_or_default();
        Answer {
            status,
            backend,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    pub async fn chat(&self) -> Answer {
        self.call(
            Dialect::Openai,
            Operation::Chat,
            json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await
    }

    pub async fn chat_stream(&self, caller: Dialect) -> Answer {
        let body = json!({"model": "chat", "max_tokens": 16, "stream": true,
                          "messages": [{"role": "user", "content": "hi"}]});
        self.call(caller, Operation::Chat, body).await
    }

    /// The value of one series (0 when absent). `labels` must match exactly the given ones.
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.series(name, labels).unwrap_or(0.0)
    }

    /// The value of one series, `None` when it is not exported at all.
    pub fn series(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let (family, suffix) = match name.strip_suffix("_count") {
            Some(f) => (f, "count"),
            None => (name, ""),
        };
        let mut total = None;
        for mf in self.registry.gather() {
            if mf.name() != family {
                continue;
            }
            for m in mf.get_metric() {
                let ok = labels.iter().all(|(k, v)| {
                    m.get_label()
                        .iter()
                        .any(|l| l.name() == *k && l.value() == *v)
                });
                if !ok {
                    continue;
                }
                let v = match mf.get_field_type() {
                    MetricType::HISTOGRAM if suffix == "count" => {
                        m.get_histogram().get_sample_count() as f64
                    }
                    MetricType::COUNTER => m.get_counter().get_value(),
                    MetricType::GAUGE => m.get_gauge().get_value(),
                    _ => continue,
                };
                *total.get_or_insert(0.0) += v;
            }
        }
        total
    }

    /// Attempts recorded for a backend with this outcome (any code when `code` is None).
    pub fn attempts(&self, backend: &str, outcome: &str, code: Option<&str>) -> f64 {
        let mut labels = vec![("backend", backend), ("outcome", outcome)];
        if let Some(c) = code {
            labels.push(("code", c));
        }
        self.metric("switchyard_requests_total", &labels)
    }
}

#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub backend: Option<String>,
    pub body: String,
}
