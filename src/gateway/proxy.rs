//! Serving one request: validate, find the route, pick a backend by weight, translate,
//! send, and on a retryable failure move to the next fallback tier within the retry budget.
//! Every attempt is measured.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use kube::ResourceExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::balance::{Balancers, InFlight};
use super::cache::Caches;
use super::failure::{Failure, RetryBudget};
use super::metrics::{AttemptLabels, Metrics, Outcome};
use super::relay::{Relay, RelayError};
use super::translate::sse::SseParser;
use super::translate::{self, Usage, error};
use super::upstream::{self, Admission, Operation, Target};
use super::validate::{Request, validate};
use crate::api::Dialect;

#[derive(Debug, Clone)]
pub struct Config {
    pub max_body_bytes: usize,
    /// Longest a client request may take end to end, across all attempts.
    pub request_timeout: Duration,
    /// Most attempts per request (the first plus failovers).
    pub max_attempts: usize,
}

pub struct Gateway {
    pub caches: Caches,
    pub metrics: Metrics,
    http: reqwest::Client,
    balancers: Balancers,
    in_flight: Arc<InFlight>,
    admission: Admission,
    budget: RetryBudget,
    cfg: Config,
    mirror_seq: AtomicU64,
}

/// A failed attempt: what to record and what to tell the client if it is the last.
struct Failed {
    failure: Failure,
    message: String,
}

/// The largest error body read from an upstream, to quote its message.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// The largest successful non-streamed body accepted from an upstream.
const MAX_RESPONSE_BODY: usize = 32 * 1024 * 1024;

impl Gateway {
    pub fn new(caches: Caches, metrics: Metrics, cfg: Config) -> anyhow::Result<Self> {
        Ok(Self {
            caches,
            metrics,
            // Timeouts are per attempt and per phase (see `attempt`), not per client.
            http: reqwest::Client::builder()
                .no_proxy()
                .tcp_nodelay(true)
                .pool_idle_timeout(Duration::from_secs(60))
                .connect_timeout(Duration::from_secs(5))
                .build()?,
            balancers: Balancers::default(),
            in_flight: Arc::new(InFlight::default()),
            admission: Admission::default(),
            budget: RetryBudget::new(0.2, 10, Duration::from_secs(10)),
            cfg,
            mirror_seq: AtomicU64::new(0),
        })
    }

    /// Serves one request end to end. Always answers, in the caller's dialect.
    pub async fn serve(
        self: Arc<Self>,
        caller: Dialect,
        op: Operation,
        headers: HeaderMap,
        body: Body,
    ) -> Response {
        let request_id = headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 128 && v.chars().all(|c| c.is_ascii_graphic()))
            .map(str::to_owned)
            .unwrap_or_else(|| format!("req_{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..)));
        let mut resp = self.handle(caller, op, &headers, body, &request_id).await;
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            resp.headers_mut().insert("x-request-id", v);
        }
        resp
    }

    async fn handle(
        self: &Arc<Self>,
        caller: Dialect,
        op: Operation,
        headers: &HeaderMap,
        body: Body,
        rid: &str,
    ) -> Response {
        let bytes = match axum::body::to_bytes(body, self.cfg.max_body_bytes).await {
            Ok(b) => b,
            Err(e) if format!("{e:?}").contains("LengthLimit") => {
                return error_response(
                    caller,
                    413,
                    &format!(
                        "request body exceeds the gateway's limit of {} bytes",
                        self.cfg.max_body_bytes
                    ),
                );
            }
            Err(e) => {
                return error_response(
                    caller,
                    400,
                    &format!("could not read the request body: {e}"),
                );
            }
        };
        let parsed: Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(e) => {
                return error_response(
                    caller,
                    400,
                    &format!("request body is not valid JSON: {e}"),
                );
            }
        };
        let req = match validate(caller, op, parsed) {
            Ok(r) => r,
            Err(msg) => return error_response(caller, 400, &msg),
        };
        let Some(route) = self.caches.route(&req.model) else {
            let served: Vec<String> = self.caches.models().into_iter().map(|(m, _)| m).collect();
            return error_response(
                caller,
                404,
                &format!(
                    "The model '{}' does not exist on this gateway; it serves: {}",
                    req.model,
                    if served.is_empty() {
                        "nothing yet".into()
                    } else {
                        served.join(", ")
                    }
                ),
            );
        };
        let ns = route.namespace().unwrap_or_default();
        let route_name = route.name_any();
        let weights = route
            .status
            .as_ref()
            .map(|s| s.weights.clone())
            .unwrap_or_default();
        let Some(primary) = self.balancers.pick(&format!("{ns}/{route_name}"), &weights) else {
            return error_response(
                caller,
                503,
                &format!(
                    "model '{}' has no backend split in effect yet (ModelRoute {ns}/{route_name})",
                    req.model
                ),
            );
        };
        let mut tiers = vec![primary];
        for f in &route.spec.fallback {
            if !tiers.contains(&f.name) {
                tiers.push(f.name.clone());
            }
        }
        tiers.truncate(self.cfg.max_attempts.max(1));
        if let Some(mirror) = route.status.as_ref().and_then(|s| s.mirror.as_ref()) {
            let seq = self.mirror_seq.fetch_add(1, Ordering::Relaxed);
            if (seq % 100) < mirror.percent.clamp(0, 100) as u64 {
                for b in mirror.backends.iter().filter(|b| **b != tiers[0]) {
                    self.spawn_shadow(caller, op, &req, &ns, &route_name, b, rid);
                }
            }
        }

        self.budget.deposit();
        let deadline = Instant::now() + self.cfg.request_timeout;
        let mut failures: Vec<String> = vec![];
        let mut last = Failure::Connect;
        for (i, name) in tiers.iter().enumerate() {
            let started = Instant::now();
            let (failed, provider): (Failed, Option<&'static str>) = match upstream::resolve(
                &self.caches,
                &self.admission,
                &self.in_flight,
                &ns,
                name,
                op,
            ) {
                Ok(target) => {
                    let provider = target.provider;
                    let labels = AttemptLabels {
                        namespace: &ns,
                        route: &route_name,
                        backend: name,
                        provider,
                    };
                    match self
                        .attempt(caller, op, &req, target, &labels, deadline, rid, headers)
                        .await
                    {
                        Ok(resp) => return resp,
                        Err(f) => (f, Some(provider)),
                    }
                }
                Err(u) => (
                    Failed {
                        failure: u.failure,
                        message: u.message,
                    },
                    None,
                ),
            };
            let retryable = failed.failure.retryable();
            if let Failure::RateLimited {
                retry_after: Some(d),
            } = failed.failure
            {
                self.admission
                    .cool_down(&format!("{ns}/{name}"), Instant::now() + d);
            }
            let next = tiers.get(i + 1);
            let retry =
                retryable && next.is_some() && Instant::now() < deadline && self.budget.withdraw();
            if let Some(provider) = provider {
                let labels = AttemptLabels {
                    namespace: &ns,
                    route: &route_name,
                    backend: name,
                    provider,
                };
                let outcome = if retry {
                    Outcome::Failover
                } else {
                    Outcome::Error
                };
                self.metrics.attempt(
                    &labels,
                    outcome,
                    &failed.failure.metric_code(),
                    started.elapsed().as_secs_f64(),
                );
            }
            if !retryable {
                return error_response(caller, failed.failure.status(), &failed.message);
            }
            tracing::info!(request_id = rid, backend = %name, reason = failed.failure.reason(), retry, message = %failed.message, "attempt failed");
            failures.push(format!("{name}: {}", failed.message));
            last = failed.failure;
            match next {
                Some(to) if retry => {
                    self.metrics
                        .failover(&ns, &route_name, name, to, last.reason())
                }
                Some(_) => {
                    failures.push(
                        "no retry: the gateway's retry budget or the request deadline is exhausted"
                            .into(),
                    );
                    break;
                }
                None => break,
            }
        }
        let mut resp = error_response(
            caller,
            last.status(),
            &format!(
                "no backend could serve model '{}': {}",
                req.model,
                failures.join("; ")
            ),
        );
        if let Failure::RateLimited {
            retry_after: Some(d),
        } = last
            && let Ok(v) = HeaderValue::from_str(&d.as_secs().max(1).to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }

    /// One attempt against one backend. `Err` means nothing was sent to the client yet.
    #[allow(clippy::too_many_arguments)]
    async fn attempt(
        self: &Arc<Self>,
        caller: Dialect,
        op: Operation,
        req: &Request,
        target: Target,
        labels: &AttemptLabels<'_>,
        deadline: Instant,
        rid: &str,
        client_headers: &HeaderMap,
    ) -> Result<Response, Failed> {
        let body = upstream_body(caller, op, req, &target).map_err(|msg| Failed {
            failure: Failure::Client { status: 400 },
            message: msg,
        })?;
        let started = Instant::now();
        let gauge = self.metrics.in_flight(labels);
        let phase_timeout = target
            .timeout
            .min(deadline.saturating_duration_since(Instant::now()));
        let send = self.send(&target, &body, rid, client_headers);
        let resp = match tokio::time::timeout(phase_timeout, send).await {
            Err(_) => return Err(timeout_failure(&target)),
            Ok(Err(e)) => {
                return Err(Failed {
                    failure: if e.is_timeout() {
                        Failure::Timeout
                    } else {
                        Failure::Connect
                    },
                    message: format!(
                        "could not reach backend {:?}: {}",
                        target.backend,
                        root_cause(&e)
                    ),
                });
            }
            Ok(Ok(r)) => r,
        };
        let status = resp.status().as_u16();
        if !resp.status().is_success() {
            let retry_after = resp
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let text = read_limited(resp, MAX_ERROR_BODY, phase_timeout)
                .await
                .unwrap_or_default();
            let upstream_msg = serde_json::from_slice::<Value>(&text)
                .ok()
                .and_then(|v| error::error_message(&v))
                .unwrap_or_else(|| String::from_utf8_lossy(&text).chars().take(300).collect());
            let failure = Failure::from_status(status, retry_after.as_deref());
            let message = match failure {
                Failure::Auth { .. } => format!(
                    "backend {:?} rejected the gateway's credentials ({status}): {upstream_msg}; check the Secret its credentials name",
                    target.backend
                ),
                _ => format!(
                    "backend {:?} answered {status}: {upstream_msg}",
                    target.backend
                ),
            };
            return Err(Failed { failure, message });
        }

        if req.stream {
            return self
                .stream(caller, req, target, labels, resp, started, gauge)
                .await;
        }

        let remaining = target
            .timeout
            .min(deadline.saturating_duration_since(Instant::now()));
        let bytes = read_limited(resp, MAX_RESPONSE_BODY, remaining)
            .await
            .map_err(|f| Failed {
                message: format!("backend {:?}: {}", target.backend, f.message),
                ..f
            })?;
        let malformed = |why: &str| Failed {
            failure: Failure::Malformed,
            message: format!(
                "backend {:?} sent a malformed response: {why}",
                target.backend
            ),
        };
        let upstream: Value =
            serde_json::from_slice(&bytes).map_err(|e| malformed(&e.to_string()))?;
        let expected = match (op, target.dialect) {
            (Operation::Embeddings, _) => "data",
            (Operation::Chat, Dialect::Openai) => "choices",
            (Operation::Chat, Dialect::Anthropic) => "content",
        };
        if !upstream.get(expected).is_some_and(Value::is_array) {
            return Err(malformed(&format!("no '{expected}' array")));
        }
        let usage = match target.dialect {
            Dialect::Openai => translate::response::usage_openai(&upstream),
            Dialect::Anthropic => translate::response::usage_anthropic(&upstream),
        }
        .unwrap_or(Usage {
            input: 0,
            output: 0,
        });
        let answer = match (caller, target.dialect) {
            (Dialect::Openai, Dialect::Anthropic) => {
                translate::response::anthropic_to_openai(&upstream, &target.model, now_secs())
            }
            (Dialect::Anthropic, Dialect::Openai) => {
                translate::response::openai_to_anthropic(&upstream, &target.model)
            }
            _ => upstream,
        };
        let elapsed = started.elapsed().as_secs_f64();
        self.metrics
            .attempt(labels, Outcome::Success, &status.to_string(), elapsed);
        self.metrics
            .tokens(labels, usage.input, usage.output, target.price);
        drop(gauge);
        let mut resp = (StatusCode::OK, axum::Json(answer)).into_response();
        insert_backend(&mut resp, &target.backend);
        Ok(resp)
    }

    async fn send(
        &self,
        target: &Target,
        body: &Value,
        rid: &str,
        client_headers: &HeaderMap,
    ) -> reqwest::Result<reqwest::Response> {
        let mut rb = self
            .http
            .post(&target.url)
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-request-id", rid)
            .body(body.to_string());
        if let Some((name, value)) = &target.auth {
            rb = rb.header(*name, value);
        }
        if target.dialect == Dialect::Anthropic {
            let version = client_headers
                .get("anthropic-version")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("2023-06-01");
            rb = rb.header("anthropic-version", version);
        }
        rb.send().await
    }

    /// Streams the answer. The first upstream event is awaited before the client gets
    /// anything, so an upstream that fails or stalls before its first byte can still fail over.
    #[allow(clippy::too_many_arguments)]
    async fn stream(
        self: &Arc<Self>,
        caller: Dialect,
        req: &Request,
        target: Target,
        labels: &AttemptLabels<'_>,
        resp: reqwest::Response,
        started: Instant,
        gauge: super::metrics::InFlightGauge,
    ) -> Result<Response, Failed> {
        let client_wants_usage = req
            .body
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            == Some(true);
        let mut relay = Relay::new(
            caller,
            target.dialect,
            &target.model,
            now_secs(),
            client_wants_usage,
        );
        let mut parser = SseParser::default();
        let mut upstream = resp.bytes_stream();
        let mut first: Vec<String> = vec![];
        while first.is_empty() && !relay.done() {
            let chunk = match tokio::time::timeout(target.timeout, upstream.next()).await {
                Err(_) => return Err(timeout_failure(&target)),
                Ok(None) => {
                    return Err(Failed {
                        failure: Failure::Malformed,
                        message: format!(
                            "backend {:?} ended its stream before sending anything",
                            target.backend
                        ),
                    });
                }
                Ok(Some(Err(e))) => {
                    return Err(Failed {
                        failure: Failure::Connect,
                        message: format!(
                            "backend {:?} stream failed: {}",
                            target.backend,
                            root_cause(&e)
                        ),
                    });
                }
                Ok(Some(Ok(c))) => c,
            };
            for ev in parser.push(&chunk) {
                match relay.on_event(&ev) {
                    Ok(frames) => first.extend(frames),
                    Err(RelayError::Upstream(m)) => {
                        return Err(Failed {
                            failure: Failure::Server { status: 502 },
                            message: format!("backend {:?} streamed an error: {m}", target.backend),
                        });
                    }
                    Err(RelayError::Malformed(m)) => {
                        return Err(Failed {
                            failure: Failure::Malformed,
                            message: format!("backend {:?}: {m}", target.backend),
                        });
                    }
                }
            }
        }
        self.metrics
            .first_token(labels, started.elapsed().as_secs_f64());

        let (tx, rx) = mpsc::channel::<Bytes>(32);
        let gw = self.clone();
        let owned = OwnedLabels::from(labels);
        let backend = target.backend.clone();
        let backend_header = backend.clone();
        tokio::spawn(async move {
            let mut client_gone = false;
            for f in first {
                client_gone |= tx.send(Bytes::from(f)).await.is_err();
            }
            let mut failure: Option<String> = None;
            while !client_gone && !relay.done() {
                match tokio::time::timeout(target.timeout, upstream.next()).await {
                    Err(_) => {
                        failure = Some(format!(
                            "backend {backend:?} stalled mid-stream for {}s",
                            target.timeout.as_secs()
                        ))
                    }
                    Ok(None) => {
                        failure = Some(format!(
                            "backend {backend:?} ended the stream before it was complete"
                        ))
                    }
                    Ok(Some(Err(e))) => {
                        failure = Some(format!(
                            "backend {backend:?} stream failed: {}",
                            root_cause(&e)
                        ))
                    }
                    Ok(Some(Ok(chunk))) => {
                        for ev in parser.push(&chunk) {
                            match relay.on_event(&ev) {
                                Ok(frames) => {
                                    for f in frames {
                                        client_gone |= tx.send(Bytes::from(f)).await.is_err();
                                    }
                                }
                                Err(RelayError::Upstream(m) | RelayError::Malformed(m)) => {
                                    failure = Some(format!("backend {backend:?}: {m}"));
                                    break;
                                }
                            }
                        }
                    }
                }
                if failure.is_some() {
                    break;
                }
            }
            // After the first byte no failover is possible: end with an error event the
            // caller's SDK understands, then close.
            let code = match &failure {
                Some(msg) => {
                    let _ = tx.send(Bytes::from(relay.error_frame(502, msg))).await;
                    "stream_error"
                }
                None if client_gone => "499",
                None => "200",
            };
            let labels = owned.labels();
            let outcome = if failure.is_some() {
                Outcome::Error
            } else {
                Outcome::Success
            };
            gw.metrics
                .attempt(&labels, outcome, code, started.elapsed().as_secs_f64());
            let usage = relay.usage();
            gw.metrics
                .tokens(&labels, usage.input, usage.output, target.price);
            drop(gauge);
            drop(target);
        });

        let body = Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
        }));
        let mut resp = Response::new(body);
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        insert_backend(&mut resp, &backend_header);
        Ok(resp)
    }

    /// Sends a copy of the request to a mirror backend in the background and records the
    /// answer as shadow traffic; the client never waits for it.
    #[allow(clippy::too_many_arguments)]
    fn spawn_shadow(
        self: &Arc<Self>,
        caller: Dialect,
        op: Operation,
        req: &Request,
        ns: &str,
        route: &str,
        backend: &str,
        rid: &str,
    ) {
        let gw = self.clone();
        let (ns, route, backend, rid) = (
            ns.to_owned(),
            route.to_owned(),
            backend.to_owned(),
            format!("{rid}-shadow"),
        );
        let mut body = req.body.clone();
        if let Some(o) = body.as_object_mut() {
            o.remove("stream");
            o.remove("stream_options");
        }
        let shadow = Request {
            body,
            model: req.model.clone(),
            stream: false,
        };
        tokio::spawn(async move {
            let Ok(target) =
                upstream::resolve(&gw.caches, &gw.admission, &gw.in_flight, &ns, &backend, op)
            else {
                return;
            };
            let labels = AttemptLabels {
                namespace: &ns,
                route: &route,
                backend: &backend,
                provider: target.provider,
            };
            let Ok(body) = upstream_body(caller, op, &shadow, &target) else {
                return;
            };
            let started = Instant::now();
            let result = tokio::time::timeout(
                target.timeout,
                gw.send(&target, &body, &rid, &HeaderMap::new()),
            )
            .await;
            let (code, usage) = match result {
                Ok(Ok(resp)) => {
                    let status = resp.status().as_u16();
                    let bytes = read_limited(resp, MAX_RESPONSE_BODY, target.timeout)
                        .await
                        .unwrap_or_default();
                    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                    let usage = match target.dialect {
                        Dialect::Openai => translate::response::usage_openai(&v),
                        Dialect::Anthropic => translate::response::usage_anthropic(&v),
                    };
                    (status.to_string(), usage)
                }
                Ok(Err(_)) => ("connect".into(), None),
                Err(_) => ("timeout".into(), None),
            };
            gw.metrics.attempt(
                &labels,
                Outcome::Shadow,
                &code,
                started.elapsed().as_secs_f64(),
            );
            if let Some(u) = usage {
                gw.metrics.tokens(&labels, u.input, u.output, target.price);
            }
        });
    }
}

/// The request as the backend's dialect wants it, with the backend's model id.
fn upstream_body(
    caller: Dialect,
    op: Operation,
    req: &Request,
    target: &Target,
) -> Result<Value, String> {
    let mut body = match (op, caller, target.dialect) {
        (Operation::Chat, Dialect::Openai, Dialect::Anthropic) => {
            translate::request::openai_to_anthropic(&req.body, &target.model)
                .map_err(|e| e.to_string())?
        }
        (Operation::Chat, Dialect::Anthropic, Dialect::Openai) => {
            translate::request::anthropic_to_openai(&req.body, &target.model)
                .map_err(|e| e.to_string())?
        }
        _ => {
            let mut b = req.body.clone();
            b["model"] = json!(target.model);
            b
        }
    };
    // Ask OpenAI-dialect upstreams for usage in streams, for the token metrics; the relay
    // drops that chunk again unless the client asked for it too.
    if req.stream && target.dialect == Dialect::Openai {
        body["stream_options"]["include_usage"] = json!(true);
    }
    Ok(body)
}

/// Reads a body up to `limit` bytes within `timeout`.
async fn read_limited(
    resp: reqwest::Response,
    limit: usize,
    timeout: Duration,
) -> Result<Vec<u8>, Failed> {
    let read = async {
        let mut out = Vec::new();
        let mut s = resp.bytes_stream();
        while let Some(chunk) = s.next().await {
            let chunk = chunk.map_err(|e| Failed {
                failure: Failure::Connect,
                message: format!("response body failed: {}", root_cause(&e)),
            })?;
            if out.len() + chunk.len() > limit {
                return Err(Failed {
                    failure: Failure::Malformed,
                    message: format!("response body larger than {limit} bytes"),
                });
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    };
    tokio::time::timeout(timeout, read)
        .await
        .unwrap_or_else(|_| {
            Err(Failed {
                failure: Failure::Timeout,
                message: "response body timed out".into(),
            })
        })
}

fn timeout_failure(target: &Target) -> Failed {
    Failed {
        failure: Failure::Timeout,
        message: format!(
            "backend {:?} sent nothing within its timeout of {}s",
            target.backend,
            target.timeout.as_secs_f64()
        ),
    }
}

/// The innermost error, which says what actually happened (reqwest wraps it twice).
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// An error in the caller's dialect.
pub fn error_response(caller: Dialect, status: u16, message: &str) -> Response {
    let body = match caller {
        Dialect::Openai => error::openai_error(status, message),
        Dialect::Anthropic => error::anthropic_error(status, message),
    };
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    (code, axum::Json(body)).into_response()
}

fn insert_backend(resp: &mut Response, backend: &str) {
    if let Ok(v) = HeaderValue::from_str(backend) {
        resp.headers_mut().insert("x-switchyard-backend", v);
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Labels owned by a background task.
struct OwnedLabels {
    namespace: String,
    route: String,
    backend: String,
    provider: &'static str,
}

impl From<&AttemptLabels<'_>> for OwnedLabels {
    fn from(l: &AttemptLabels<'_>) -> Self {
        Self {
            namespace: l.namespace.to_owned(),
            route: l.route.to_owned(),
            backend: l.backend.to_owned(),
            provider: l.provider,
        }
    }
}

impl OwnedLabels {
    fn labels(&self) -> AttemptLabels<'_> {
        AttemptLabels {
            namespace: &self.namespace,
            route: &self.route,
            backend: &self.backend,
            provider: self.provider,
        }
    }
}
