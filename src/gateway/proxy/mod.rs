//! Serving one request, as its life goes: read and validate it, find its route in the
//! snapshot, land on a backend by weight, attempt it, and go on to the split's other
//! backends and then the fallback tiers while the failure allows it and the retry budget
//! lasts. Every attempt is recorded, including the ones a backend could not take. One
//! attempt is in `attempt`, a streamed answer in `stream`, a mirror copy in `shadow`.

mod attempt;
mod count;
mod headers;
mod shadow;
mod stream;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::auth::Caller;
use super::client::{self, Upstream};
use super::failure::{Failure, RetryBudget};
use super::metrics::{Metrics, Outcome};
use super::outlier::OutlierConfig;
use super::pick::{self, Balancer, Weighted};
use super::snapshot::{Route, RouteBackend, Snapshots};
use super::translate::{self, error};
use super::upstream::{self, Operation, Refusal, Target};
use super::validate::{Request, validate};
use crate::api::Dialect;

#[derive(Debug, Clone)]
pub struct Config {
    pub max_body_bytes: usize,
    /// Longest a client may take to send a request's body.
    pub body_read_timeout: Duration,
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
            body_read_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(300),
            max_attempts: 3,
            outliers: OutlierConfig::default(),
        }
    }
}

pub struct Gateway {
    pub snapshots: Arc<Snapshots>,
    pub metrics: Arc<Metrics>,
    http: Upstream,
    balancer: Box<dyn Balancer>,
    budget: RetryBudget,
    cfg: Config,
    mirror_seq: AtomicU64,
}

/// What every stage of serving one request needs.
pub struct Ctx {
    /// Who is calling: the tenant whose key the request presented.
    pub who: Arc<Caller>,
    pub caller: Dialect,
    pub op: Operation,
    pub req: Request,
    pub rid: String,
    /// The client's headers (`anthropic-version` is passed on).
    pub headers: HeaderMap,
    pub started: Instant,
    /// The end of `--request-timeout`, across all attempts.
    pub deadline: Instant,
    pub route: Arc<Route>,
    /// The one backend (position in `route.backends`) an evaluation replay pinned: no other
    /// is tried, nothing is mirrored.
    pub pin: Option<usize>,
    /// Time spent waiting for upstreams so far, in nanoseconds: what the gateway's own
    /// overhead leaves out.
    upstream_wait: AtomicU64,
}

impl Ctx {
    /// Awaits an upstream's answer (or its next part), counting the wait as the upstream's.
    pub async fn upstream<F: std::future::Future>(&self, f: F) -> F::Output {
        let t = Instant::now();
        let out = f.await;
        self.upstream_wait
            .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        out
    }

    /// The request's time so far, less the time spent waiting for upstreams.
    fn overhead(&self) -> Duration {
        self.started.elapsed().saturating_sub(Duration::from_nanos(
            self.upstream_wait.load(Ordering::Relaxed),
        ))
    }
}

/// The `code` of an attempt whose backend's dialect cannot express the request.
const UNSUPPORTED: &str = "unsupported";

/// Bodies up to this size are parsed where they arrive; larger ones on the blocking pool.
const PARSE_ON_RUNTIME_MAX_BYTES: usize = 256 << 10;

/// The backend an evaluation replay pins (`x-switchyard-pin-backend`), as its position in
/// the route; the header means nothing from any other caller.
fn pinned(who: &Caller, headers: &HeaderMap, route: &Route) -> Result<Option<usize>, String> {
    if !who.is_evaluation() {
        return Ok(None);
    }
    let Some(name) = headers.get(crate::gateway::evaluation::PIN_HEADER) else {
        return Ok(None);
    };
    let name = name.to_str().unwrap_or_default();
    route
        .backends
        .iter()
        .position(|b| &*b.name == name)
        .map(Some)
        .ok_or_else(|| {
            format!(
                "backend '{name}' is not part of ModelRoute {}/{} (its split, fallback or migration target)",
                route.namespace, route.name
            )
        })
}

/// What the caller is told when no backend served the request.
struct Last {
    status: u16,
    retry_after: Option<Duration>,
    /// The upstream's rate-limit headers, for the caller.
    relayed: headers::Relayed,
}

/// The request's way through the route: what was tried, and whether the split panics.
struct Way {
    tried: Vec<usize>,
    /// Whether the split is in panic; computed the first time it matters.
    panic: Option<bool>,
}

impl Gateway {
    pub fn new(
        snapshots: Arc<Snapshots>,
        metrics: Arc<Metrics>,
        cfg: Config,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            snapshots,
            metrics,
            // Timeouts are per attempt and per phase (see `attempt`), not per client.
            http: Upstream::new(client::CONNECT_TIMEOUT, client::POOL_IDLE),
            balancer: Box::new(Weighted),
            // Finagle's and Linkerd's defaults: 20% of requests plus 10 retries a second.
            budget: RetryBudget::new(0.2, 100, Duration::from_secs(10)),
            cfg,
            mirror_seq: AtomicU64::new(0),
        })
    }

    /// Ends ejections that are over, so the gauge the controller reads falls back without
    /// traffic.
    pub fn sweep_outliers(&self) {
        let now = Instant::now();
        for b in self.snapshots.load().backends() {
            let mut d = b.state.outliers.lock().unwrap_or_else(|e| e.into_inner());
            if d.sweep(now) {
                let n = d.ejected_count(now);
                drop(d);
                b.state.metrics.set_ejected(n);
            }
        }
    }

    /// Serves one request end to end. Always answers, in the caller's dialect.
    pub async fn serve(
        self: Arc<Self>,
        who: Arc<Caller>,
        caller: Dialect,
        op: Operation,
        headers: HeaderMap,
        body: Body,
    ) -> Response {
        let started = Instant::now();
        let rid = headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 128 && v.chars().all(|c| c.is_ascii_graphic()))
            .map(str::to_owned)
            .unwrap_or_else(|| format!("req_{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..)));
        let mut resp = match self.read_request(caller, op, body).await {
            Err(resp) => resp,
            Ok(req) => match self
                .route(&who, &req)
                .and_then(|route| Ok((pinned(&who, &headers, &route)?, route)))
            {
                Err(message) => error_response(caller, 404, &message),
                Ok((pin, route)) => {
                    let ctx = Ctx {
                        who,
                        caller,
                        op,
                        req,
                        rid,
                        headers,
                        started,
                        deadline: started + self.cfg.request_timeout,
                        route,
                        pin,
                        upstream_wait: AtomicU64::new(0),
                    };
                    let resp = self.handle(&ctx).await;
                    return with_request_id(resp, &ctx.rid);
                }
            },
        };
        if let Ok(v) = HeaderValue::from_str(&rid) {
            resp.headers_mut().insert("x-request-id", v);
        }
        resp
    }

    /// The route serving the requested model, from the snapshot in use; or the 404's text.
    /// A route the caller may not use is not found either, so that model names cannot be
    /// enumerated with a key; the message lists only the caller's own models.
    fn route(&self, who: &Caller, req: &Request) -> Result<Arc<Route>, String> {
        let snapshot = self.snapshots.load();
        snapshot
            .route(&req.model)
            .filter(|r| who.may_use(&r.namespace, &r.name))
            .cloned()
            .ok_or_else(|| {
                format!(
                    "The model '{}' does not exist or you do not have access to it; models for your key: {}",
                    req.model,
                    snapshot.served(who)
                )
            })
    }

    /// Picks, attempts and fails over until a backend answers or none is left.
    async fn handle(self: &Arc<Self>, ctx: &Ctx) -> Response {
        let route = &ctx.route;
        let Some(landing) = ctx.pin.or_else(|| self.balancer.land(&route.landings)) else {
            return error_response(
                ctx.caller,
                503,
                &format!(
                    "model '{}' has no backend split in effect yet (ModelRoute {}/{})",
                    ctx.req.model, route.namespace, route.name
                ),
            );
        };
        // A backend whose dialect lacks the operation (legacy completions on Anthropic) is
        // not landed on while the split has one that can serve it.
        let landing = if ctx.pin.is_none() && !upstream::supports(&route.backends[landing], ctx.op)
        {
            self.balancer
                .repick(&route.weights, &mut |i| {
                    upstream::supports(&route.backends[i], ctx.op)
                })
                .unwrap_or(landing)
        } else {
            landing
        };
        // Counting tokens is not inference: nothing to compare on a mirror.
        let mirrored = ctx.pin.is_none() && ctx.op.metered();
        if let Some(mirror) = route.mirror.as_ref().filter(|_| mirrored) {
            let seq = self.mirror_seq.fetch_add(1, Ordering::Relaxed);
            if (seq % 100) < mirror.percent {
                for &b in mirror.backends.iter().filter(|b| **b != landing) {
                    self.spawn_shadow(ctx, b);
                }
            }
        }

        self.budget.deposit();
        let mut way = Way {
            tried: Vec::with_capacity(route.backends.len()),
            panic: None,
        };
        let mut failures: Vec<String> = vec![];
        let mut last: Option<Last> = None;
        let mut unsupported: Option<String> = None;
        let mut sent = 0usize;
        let mut next = Some(landing);
        while let Some(at) = next.take() {
            way.tried.push(at);
            let rb = &route.backends[at];
            let name = &rb.name;
            let started = Instant::now();
            // Nothing is sent when the backend refuses: the attempt is recorded with why, and
            // the request moves on without spending the retry budget.
            let refused = |code: &str, outcome, way: &mut Way| {
                if ctx.op.metered() {
                    rb.metrics.attempt(
                        &ctx.who.tenant,
                        outcome,
                        code,
                        started.elapsed().as_secs_f64(),
                    );
                }
                let more = sent < self.cfg.max_attempts.max(1) && Instant::now() < ctx.deadline;
                let next = if more { self.next(ctx, way) } else { None };
                if let Some(to) = next {
                    self.failover(route, rb, to, code);
                }
                next
            };
            if ctx.op == Operation::CountTokens
                && rb.backend.as_ref().is_ok_and(|b| !b.counts_tokens)
            {
                return self.estimate(ctx, name).await;
            }
            let target = match self.admit(ctx, &mut way, at) {
                Ok(t) => t,
                Err(Refusal::Unavailable {
                    why,
                    message,
                    retry_after,
                }) => {
                    failures.push(format!("{name}: {message}"));
                    last = Some(Last {
                        status: why.status(),
                        retry_after,
                        relayed: vec![],
                    });
                    next = refused(why.code(), Outcome::Unavailable, &mut way);
                    continue;
                }
                Err(Refusal::Unsupported { message }) => {
                    failures.push(format!("{name}: {message}"));
                    unsupported.get_or_insert(message);
                    next = refused(UNSUPPORTED, Outcome::ClientError, &mut way);
                    continue;
                }
            };
            let body = match upstream_body(ctx.caller, ctx.op, &ctx.req, &target) {
                Ok(b) => b,
                Err(message) => {
                    // This backend's dialect cannot express the request; another may.
                    drop(target);
                    failures.push(format!("{name}: {message}"));
                    unsupported.get_or_insert(message);
                    next = refused(UNSUPPORTED, Outcome::ClientError, &mut way);
                    continue;
                }
            };
            sent += 1;
            let host = target.host();
            let result = self.attempt(ctx, body, target).await;
            host.record(matches!(&result, Err(f) if !f.committed && f.failure.is_host_failure()));
            let failed = match result {
                Ok(resp) => {
                    if ctx.op.metered() {
                        rb.metrics.overhead(ctx.overhead().as_secs_f64());
                    }
                    return resp;
                }
                Err(f) => f,
            };
            if let Some(d) = failed.failure.retry_after() {
                host.state.cool_down(Instant::now() + d);
            }
            // A committed answer (the upstream said 2xx) is never sent again: that would
            // bill the caller twice.
            let may_retry = !failed.committed
                && failed.failure.retryable()
                && sent < self.cfg.max_attempts.max(1)
                && Instant::now() < ctx.deadline;
            next = if may_retry {
                self.next(ctx, &mut way)
            } else {
                None
            };
            let retry = next.is_some() && self.budget.withdraw();
            let outcome = match (&failed.failure, retry) {
                (Failure::Client { .. }, _) => Outcome::ClientError,
                (_, true) => Outcome::Failover,
                (_, false) => Outcome::Error,
            };
            if ctx.op.metered() {
                rb.metrics.attempt(
                    &ctx.who.tenant,
                    outcome,
                    &failed.failure.metric_code(),
                    started.elapsed().as_secs_f64(),
                );
            }
            if failed.committed || !failed.failure.retryable() {
                let mut resp = error_response(ctx.caller, failed.failure.status(), &failed.message);
                headers::relay(&mut resp, &failed.relayed);
                return resp;
            }
            tracing::info!(request_id = ctx.rid, backend = %name, reason = failed.failure.reason(), retry, elapsed_ms = ctx.started.elapsed().as_millis() as u64, message = %failed.message, "attempt failed");
            failures.push(format!("{name}: {}", failed.message));
            last = Some(Last {
                status: failed.failure.status(),
                retry_after: failed.failure.retry_after(),
                relayed: failed.relayed,
            });
            match next {
                Some(to) if retry => self.failover(route, rb, to, failed.failure.reason()),
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
            return error_response(ctx.caller, 400, &msg);
        };
        let mut resp = error_response(
            ctx.caller,
            last.status,
            &format!(
                "no backend could serve model '{}': {}",
                ctx.req.model,
                failures.join("; ")
            ),
        );
        // The gateway's own Retry-After (the longest wait it knows) overrides the relayed one.
        headers::relay(&mut resp, &last.relayed);
        if let Some(d) = last.retry_after
            && let Ok(v) = HeaderValue::from_str(&d.as_secs().max(1).to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }

    fn failover(&self, route: &Route, from: &RouteBackend, to: usize, reason: &str) {
        self.metrics.failover(
            &route.namespace,
            &route.name,
            &from.name,
            &route.backends[to].name,
            reason,
        );
    }

    /// Reads, parses and validates the body, or answers the caller's mistake.
    async fn read_request(
        &self,
        caller: Dialect,
        op: Operation,
        body: Body,
    ) -> Result<Request, Response> {
        let read = collect(body, self.cfg.max_body_bytes);
        let Ok(read) = tokio::time::timeout(self.cfg.body_read_timeout, read).await else {
            return Err(error_response(
                caller,
                408,
                &format!(
                    "the request body did not arrive within the gateway's --body-read-timeout of {}",
                    crate::duration::format(self.cfg.body_read_timeout)
                ),
            ));
        };
        let bytes = match read {
            Ok(b) => b,
            Err(ReadError::TooLarge) => {
                return Err(error_response(
                    caller,
                    413,
                    &format!(
                        "request body exceeds the gateway's limit of {} bytes",
                        self.cfg.max_body_bytes
                    ),
                ));
            }
            Err(ReadError::Failed(e)) => {
                return Err(error_response(
                    caller,
                    400,
                    &format!("could not read the request body: {e}"),
                ));
            }
        };
        // Parsing megabytes takes milliseconds (tens in a debug build): done on a runtime
        // worker it would stall every small request queued behind it on that worker, so a
        // flood of large bodies would become everyone's latency.
        let checked = if bytes.len() > PARSE_ON_RUNTIME_MAX_BYTES {
            tokio::task::spawn_blocking(move || validate(caller, op, bytes))
                .await
                .unwrap_or_else(|e| Err(format!("the request could not be checked: {e}")))
        } else {
            validate(caller, op, bytes)
        };
        checked.map_err(|msg| error_response(caller, 400, &msg))
    }

    /// Resolves and admits the backend at `at`. An ejected backend of the split is used
    /// anyway when the split is in panic.
    fn admit(&self, ctx: &Ctx, way: &mut Way, at: usize) -> Result<Target, Refusal> {
        let rb = &ctx.route.backends[at];
        match upstream::resolve(rb, ctx.op, false) {
            Err(Refusal::Unavailable {
                why: pick::Unavailable::Ejected,
                ..
            }) if at < ctx.route.weights.len() && self.panics(ctx, way) => {
                upstream::resolve(rb, ctx.op, true)
            }
            other => other,
        }
    }

    fn panics(&self, ctx: &Ctx, way: &mut Way) -> bool {
        if let Some(p) = way.panic {
            return p;
        }
        let (route, op) = (&ctx.route, ctx.op);
        let p = pick::panics(
            &route.weights,
            &mut |i| upstream::can_take(&route.backends[i], op, false),
            &mut || {
                route
                    .fallback
                    .iter()
                    .any(|f| upstream::can_take(&route.backends[*f], op, false))
            },
        );
        way.panic = Some(p);
        p
    }

    /// The next backend to try: another of the split that can take the request (by weight),
    /// then the fallback tiers in order.
    fn next(&self, ctx: &Ctx, way: &mut Way) -> Option<usize> {
        if ctx.pin.is_some() {
            return None;
        }
        let ignore_ejection = self.panics(ctx, way);
        let (route, op) = (&ctx.route, ctx.op);
        let tried = &way.tried;
        if let Some(i) = self.balancer.repick(&route.weights, &mut |i| {
            !tried.contains(&i) && upstream::can_take(&route.backends[i], op, ignore_ejection)
        }) {
            return Some(i);
        }
        route.fallback.iter().find(|f| !tried.contains(f)).copied()
    }
}

fn with_request_id(mut resp: Response, rid: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(rid) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

/// The request as the backend's dialect wants it, with the backend's model id: the caller's
/// bytes with the model rewritten when both speak the same dialect.
fn upstream_body(
    caller: Dialect,
    op: Operation,
    req: &Request,
    target: &Target,
) -> Result<translate::Pieces, String> {
    target
        .translator(op, caller)
        .request(&req.raw, &req.spans, &target.model, req.stream)
        .map_err(|e| e.to_string())
}

enum ReadError {
    TooLarge,
    Failed(String),
}

/// Reads a request body into one buffer of at most `limit` bytes. A body that comes in one
/// piece is kept as it came; one in pieces is copied into a buffer sized from its length
/// when the client sent one, so a large body is held once rather than as its pieces plus
/// their copy (what bounds the gateway's memory under a flood of large bodies).
async fn collect(body: Body, limit: usize) -> Result<axum::body::Bytes, ReadError> {
    use axum::body::HttpBody;
    use http_body_util::BodyExt;
    let declared = body.size_hint().exact().map(|n| n as usize);
    if declared.is_some_and(|n| n > limit) {
        return Err(ReadError::TooLarge);
    }
    let mut body = body;
    let mut first: Option<axum::body::Bytes> = None;
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ReadError::Failed(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let held = first.as_ref().map_or(0, |f| f.len()) + buf.len();
        if held + data.len() > limit {
            return Err(ReadError::TooLarge);
        }
        match first.take() {
            None if buf.is_empty() => first = Some(data),
            earlier => {
                if let Some(f) = earlier {
                    buf.reserve(declared.unwrap_or(0).max(f.len() + data.len()));
                    buf.extend_from_slice(&f);
                }
                buf.extend_from_slice(&data);
            }
        }
    }
    Ok(first.unwrap_or_else(|| buf.freeze()))
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
