//! Serving one request: validate, find the route, land on a backend by weight, and go on to
//! the split's other backends and then the fallback tiers while the failure allows it and
//! the retry budget lasts. Every attempt is recorded, including the ones a backend could not
//! take. One attempt is in `attempt`, a streamed answer in `stream`, a mirror copy in `shadow`.

mod attempt;
mod shadow;
mod stream;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kube::ResourceExt;
use serde_json::Value;

use super::admission::{Admission, Outliers};
use super::balance::InFlight;
use super::cache::Caches;
use super::failure::{Failure, RetryBudget};
use super::metrics::{AttemptLabels, Metrics, Outcome};
use super::outlier::OutlierConfig;
use super::pick::{self, Balancer, Weighted};
use super::translate::error;
use super::upstream::{Operation, Refusal, Resolver};
use super::validate::{Request, validate};
use crate::api::{Dialect, WeightedBackend};

#[derive(Debug, Clone)]
pub struct Config {
    pub max_body_bytes: usize,
    /// Longest a client request may take end to end, across all attempts, streams included.
    pub request_timeout: Duration,
    /// Most attempts sent upstream per request (the first plus failovers).
    pub max_attempts: usize,
    pub outliers: OutlierConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_body_bytes: 10 * 1024 * 1024,
            request_timeout: Duration::from_secs(300),
            max_attempts: 3,
            outliers: OutlierConfig::default(),
        }
    }
}

pub struct Gateway {
    pub caches: Caches,
    pub metrics: Metrics,
    pub outliers: Outliers,
    http: reqwest::Client,
    balancer: Box<dyn Balancer>,
    in_flight: Arc<InFlight>,
    admission: Admission,
    budget: RetryBudget,
    cfg: Config,
    mirror_seq: AtomicU64,
}

/// The `code` of an attempt whose backend's dialect cannot express the request.
const UNSUPPORTED: &str = "unsupported";

/// What the caller is told when no backend served the request.
struct Last {
    status: u16,
    retry_after: Option<Duration>,
}

/// The request's way through the route: the split, the fallback tiers, what was tried.
struct Way<'a> {
    ns: &'a str,
    op: Operation,
    split: &'a [WeightedBackend],
    fallback: &'a [String],
    tried: Vec<String>,
    /// Whether the split is in panic; computed the first time it matters.
    panic: Option<bool>,
}

impl Gateway {
    pub fn new(caches: Caches, metrics: Metrics, cfg: Config) -> anyhow::Result<Self> {
        Ok(Self {
            caches,
            metrics,
            outliers: Outliers::new(cfg.outliers),
            // Timeouts are per attempt and per phase (see `attempt`), not per client.
            http: reqwest::Client::builder()
                .no_proxy()
                .tcp_nodelay(true)
                .pool_idle_timeout(Duration::from_secs(60))
                .connect_timeout(Duration::from_secs(5))
                .build()?,
            balancer: Box::new(Weighted::default()),
            in_flight: Arc::new(InFlight::default()),
            admission: Admission::default(),
            // Finagle's and Linkerd's defaults: 20% of requests plus 10 retries a second.
            budget: RetryBudget::new(0.2, 100, Duration::from_secs(10)),
            cfg,
            mirror_seq: AtomicU64::new(0),
        })
    }

    fn resolver(&self) -> Resolver<'_> {
        Resolver {
            caches: &self.caches,
            admission: &self.admission,
            outliers: &self.outliers,
            in_flight: &self.in_flight,
        }
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
        let req = match self.read_request(caller, op, body).await {
            Ok(r) => r,
            Err(resp) => return resp,
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
        let split = route
            .status
            .as_ref()
            .map(|s| s.weights.clone())
            .unwrap_or_default();
        let Some(landing) = self.balancer.land(&format!("{ns}/{route_name}"), &split) else {
            return error_response(
                caller,
                503,
                &format!(
                    "model '{}' has no backend split in effect yet (ModelRoute {ns}/{route_name})",
                    req.model
                ),
            );
        };
        let mut fallback: Vec<String> = vec![];
        for f in &route.spec.fallback {
            if !fallback.contains(&f.name) && !split.iter().any(|b| b.name == f.name) {
                fallback.push(f.name.clone());
            }
        }
        if let Some(mirror) = route.status.as_ref().and_then(|s| s.mirror.as_ref()) {
            let seq = self.mirror_seq.fetch_add(1, Ordering::Relaxed);
            if (seq % 100) < mirror.percent.clamp(0, 100) as u64 {
                for b in mirror.backends.iter().filter(|b| **b != landing) {
                    self.spawn_shadow(caller, op, &req, &ns, &route_name, b, rid);
                }
            }
        }

        self.budget.deposit();
        let deadline = Instant::now() + self.cfg.request_timeout;
        let mut way = Way {
            ns: &ns,
            op,
            split: &split,
            fallback: &fallback,
            tried: vec![],
            panic: None,
        };
        let mut failures: Vec<String> = vec![];
        let mut last: Option<Last> = None;
        let mut unsupported: Option<String> = None;
        let mut sent = 0usize;
        let mut next = Some(landing);
        while let Some(name) = next.take() {
            way.tried.push(name.clone());
            let started = Instant::now();
            let labels = |provider| AttemptLabels {
                namespace: &ns,
                route: &route_name,
                backend: &name,
                provider,
            };
            // Nothing is sent when the backend refuses: the attempt is recorded with why, and
            // the request moves on without spending the retry budget.
            let refused = |code: &str, provider, outcome, way: &mut Way<'_>| {
                self.metrics.attempt(
                    &labels(provider),
                    outcome,
                    code,
                    started.elapsed().as_secs_f64(),
                );
                let more = sent < self.cfg.max_attempts.max(1) && Instant::now() < deadline;
                let next = if more { self.next(way) } else { None };
                if let Some(to) = &next {
                    self.metrics.failover(&ns, &route_name, &name, to, code);
                }
                next
            };
            let target = match self.admit(&mut way, &name) {
                Ok(t) => t,
                Err(Refusal::Unavailable {
                    why,
                    provider,
                    message,
                    retry_after,
                }) => {
                    failures.push(format!("{name}: {message}"));
                    last = Some(Last {
                        status: why.status(),
                        retry_after,
                    });
                    next = refused(why.code(), provider, Outcome::Unavailable, &mut way);
                    continue;
                }
                Err(Refusal::Unsupported { provider, message }) => {
                    failures.push(format!("{name}: {message}"));
                    unsupported.get_or_insert(message);
                    next = refused(UNSUPPORTED, provider, Outcome::ClientError, &mut way);
                    continue;
                }
            };
            let provider = target.provider;
            let body = match upstream_body(caller, op, &req, &target) {
                Ok(b) => b,
                Err(message) => {
                    // This backend's dialect cannot express the request; another may.
                    drop(target);
                    failures.push(format!("{name}: {message}"));
                    unsupported.get_or_insert(message);
                    next = refused(UNSUPPORTED, provider, Outcome::ClientError, &mut way);
                    continue;
                }
            };
            sent += 1;
            let (host, hosts) = (target.host.clone(), target.hosts);
            let result = self
                .attempt(
                    caller,
                    op,
                    &req,
                    body,
                    target,
                    &labels(provider),
                    deadline,
                    rid,
                    headers,
                )
                .await;
            let host_failed =
                matches!(&result, Err(f) if !f.committed && f.failure.is_host_failure());
            self.outliers
                .record(&self.metrics, &host, hosts, host_failed);
            let failed = match result {
                Ok(resp) => return resp,
                Err(f) => f,
            };
            if let Some(d) = failed.failure.retry_after() {
                self.admission
                    .cool_down(&format!("{ns}/{name}"), Instant::now() + d);
            }
            // A committed answer (the upstream said 2xx) is never sent again: that would
            // bill the caller twice.
            let may_retry = !failed.committed
                && failed.failure.retryable()
                && sent < self.cfg.max_attempts.max(1)
                && Instant::now() < deadline;
            next = if may_retry { self.next(&mut way) } else { None };
            let retry = next.is_some() && self.budget.withdraw();
            let outcome = match (&failed.failure, retry) {
                (Failure::Client { .. }, _) => Outcome::ClientError,
                (_, true) => Outcome::Failover,
                (_, false) => Outcome::Error,
            };
            self.metrics.attempt(
                &labels(provider),
                outcome,
                &failed.failure.metric_code(),
                started.elapsed().as_secs_f64(),
            );
            if failed.committed || !failed.failure.retryable() {
                return error_response(caller, failed.failure.status(), &failed.message);
            }
            tracing::info!(request_id = rid, backend = %name, reason = failed.failure.reason(), retry, message = %failed.message, "attempt failed");
            failures.push(format!("{name}: {}", failed.message));
            last = Some(Last {
                status: failed.failure.status(),
                retry_after: failed.failure.retry_after(),
            });
            match &next {
                Some(to) if retry => {
                    self.metrics
                        .failover(&ns, &route_name, &name, to, failed.failure.reason())
                }
                Some(_) => {
                    failures.push("no retry: the gateway's retry budget is exhausted".into());
                    next = None;
                }
                None => {}
            }
        }
        let Some(last) = last else {
            // Only backends whose dialect cannot express the request: the caller's to fix.
            let msg = unsupported.unwrap_or_else(|| "no backend could serve the request".into());
            return error_response(caller, 400, &msg);
        };
        let mut resp = error_response(
            caller,
            last.status,
            &format!(
                "no backend could serve model '{}': {}",
                req.model,
                failures.join("; ")
            ),
        );
        if let Some(d) = last.retry_after
            && let Ok(v) = HeaderValue::from_str(&d.as_secs().max(1).to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }

    /// Reads, parses and validates the body, or answers the caller's mistake.
    async fn read_request(
        &self,
        caller: Dialect,
        op: Operation,
        body: Body,
    ) -> Result<Request, Response> {
        let bytes = match axum::body::to_bytes(body, self.cfg.max_body_bytes).await {
            Ok(b) => b,
            Err(e) if format!("{e:?}").contains("LengthLimit") => {
                return Err(error_response(
                    caller,
                    413,
                    &format!(
                        "request body exceeds the gateway's limit of {} bytes",
                        self.cfg.max_body_bytes
                    ),
                ));
            }
            Err(e) => {
                return Err(error_response(
                    caller,
                    400,
                    &format!("could not read the request body: {e}"),
                ));
            }
        };
        let parsed: Value = serde_json::from_slice(&bytes).map_err(|e| {
            error_response(caller, 400, &format!("request body is not valid JSON: {e}"))
        })?;
        validate(caller, op, parsed).map_err(|msg| error_response(caller, 400, &msg))
    }

    /// Resolves and admits `name`. An ejected backend of the split is used anyway when the
    /// split is in panic.
    fn admit(&self, way: &mut Way<'_>, name: &str) -> Result<super::upstream::Target, Refusal> {
        let resolver = self.resolver();
        match resolver.resolve(way.ns, name, way.op, false) {
            Err(Refusal::Unavailable {
                why: pick::Unavailable::Ejected,
                ..
            }) if way.split.iter().any(|b| b.name == name) && self.panics(way) => {
                resolver.resolve(way.ns, name, way.op, true)
            }
            other => other,
        }
    }

    fn panics(&self, way: &mut Way<'_>) -> bool {
        if let Some(p) = way.panic {
            return p;
        }
        let resolver = self.resolver();
        let p = pick::panics(way.split, way.fallback, &mut |n| {
            resolver.can_take(way.ns, n, way.op, false)
        });
        way.panic = Some(p);
        p
    }

    /// The next backend to try: another of the split that can take the request (by weight),
    /// then the fallback tiers in order.
    fn next(&self, way: &mut Way<'_>) -> Option<String> {
        let ignore_ejection = self.panics(way);
        let resolver = self.resolver();
        let (ns, op) = (way.ns, way.op);
        if let Some(n) = self.balancer.repick(way.split, &way.tried, &mut |n| {
            resolver.can_take(ns, n, op, ignore_ejection)
        }) {
            return Some(n);
        }
        way.fallback
            .iter()
            .find(|f| !way.tried.contains(f))
            .cloned()
    }
}

/// The request as the backend's dialect wants it, with the backend's model id.
fn upstream_body(
    caller: Dialect,
    op: Operation,
    req: &Request,
    target: &super::upstream::Target,
) -> Result<Value, String> {
    use super::translate;
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
            b["model"] = serde_json::json!(target.model);
            b
        }
    };
    // Ask OpenAI-dialect upstreams for usage in streams, for the token metrics; the relay
    // drops that chunk again unless the client asked for it too.
    if req.stream && target.dialect == Dialect::Openai {
        body["stream_options"]["include_usage"] = serde_json::json!(true);
    }
    Ok(body)
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
