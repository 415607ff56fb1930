//! One attempt against one backend: send, classify the answer, read it. Two timeouts bound
//! it: the backend's own (`limits.timeout`: to the first byte, and the longest silence
//! within an answer) and the request's deadline (`--request-timeout`, across attempts).
//! Once the upstream has answered 2xx the attempt is *committed*: whatever goes wrong after
//! that is the caller's answer, never a reason to send the request again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::response::Response;
use serde_json::Value;

use super::{Ctx, Gateway, headers};
use crate::api::Dialect;
use crate::gateway::client::{self, Upstream};
use crate::gateway::failure::Failure;
use crate::gateway::metrics::Outcome;
use crate::gateway::scrub::scrub;
use crate::gateway::structured;
use crate::gateway::translate::Pieces;
use crate::gateway::translate::error;
use crate::gateway::upstream::Target;

/// A failed attempt: what to record and what to tell the client if it is the last.
pub struct Failed {
    pub failure: Failure,
    pub message: String,
    /// The upstream had answered 2xx (or streamed content): never send the request again.
    pub committed: bool,
    /// The upstream's rate-limit headers, for the caller if this failure is its answer.
    pub relayed: headers::Relayed,
}

impl Failed {
    pub fn before_answer(failure: Failure, message: String) -> Self {
        Self {
            failure,
            message,
            committed: false,
            relayed: vec![],
        }
    }

    fn committed(failure: Failure, message: String) -> Self {
        Self {
            failure,
            message,
            committed: true,
            relayed: vec![],
        }
    }
}

// Parsed once, not per request.
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const ANTHROPIC_VERSION: HeaderName = HeaderName::from_static("anthropic-version");

/// The largest error body read from an upstream, to quote its message.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// The largest successful non-streamed body accepted from an upstream.
pub const MAX_RESPONSE_BODY: usize = 32 * 1024 * 1024;

impl Gateway {
    /// One attempt. `Err` means nothing was sent to the client yet.
    pub(super) async fn attempt(
        self: &Arc<Self>,
        ctx: &Ctx,
        body: Pieces,
        target: Target,
    ) -> Result<Response, Failed> {
        let (caller, op, req, deadline) = (ctx.caller, ctx.op, &ctx.req, ctx.deadline);
        let started = Instant::now();
        let gauge = target.metrics.in_flight();
        let first_byte = wait(target.timeout, deadline);
        let send = self.send(&target, body, &ctx.rid, &ctx.headers);
        let resp = match ctx.upstream(tokio::time::timeout(first_byte, send)).await {
            Err(_) => return Err(timeout_failure(&target, deadline)),
            Ok(Err(e)) => {
                return Err(Failed::before_answer(
                    if client::is_timeout(&e) {
                        Failure::Timeout
                    } else {
                        Failure::Connect
                    },
                    format!(
                        "could not reach backend {:?}: {}",
                        target.backend,
                        root_cause(&e)
                    ),
                ));
            }
            Ok(Ok(r)) => r,
        };
        let status = resp.status().as_u16();
        if !resp.status().is_success() {
            return Err(ctx.upstream(self.refused(&target, resp, deadline)).await);
        }

        if req.stream {
            return self.stream(ctx, target, resp, started, gauge).await;
        }
        let relayed = headers::rate_limits(resp.headers());

        let bytes = ctx
            .upstream(read_body(resp, MAX_RESPONSE_BODY, target.timeout, deadline))
            .await
            .map_err(|f| {
                Failed::committed(
                    f.failure,
                    format!(
                        "backend {:?} answered 2xx, then {}",
                        target.backend, f.message
                    ),
                )
            })?;
        let translator = target.translator(op, caller);
        let answer = translator
            .response(bytes, &target.model, now_secs())
            .map_err(|e| {
                Failed::committed(
                    Failure::Malformed,
                    format!(
                        "backend {:?} sent a malformed response: {e}",
                        target.backend
                    ),
                )
            })?;
        let m = &target.metrics;
        if op.metered() {
            m.attempt(
                &ctx.who.tenant,
                Outcome::Success,
                &status.to_string(),
                started.elapsed().as_secs_f64(),
            );
            m.tokens(&ctx.who.tenant, answer.usage, target.price);
        }
        // Replayed evaluation cases are judged by the controller, not counted as the
        // route's structured answers.
        if let Some(expect) = &req.structured
            && !ctx.who.is_evaluation()
            && let Some(text) =
                structured::answer_text(structured::Api::of(caller, op), &answer.body)
        {
            m.structured(structured::judge(expect, &text));
        }
        drop(gauge);
        let mut resp = Response::new(axum::body::Body::from(answer.body));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        insert_backend(&mut resp, &target.backend);
        headers::relay(&mut resp, &relayed);
        Ok(resp)
    }

    /// A non-2xx answer, classified, with the upstream's own message quoted.
    async fn refused(&self, target: &Target, resp: client::Response, deadline: Instant) -> Failed {
        let status = resp.status().as_u16();
        let relayed = headers::rate_limits(resp.headers());
        let retry_after = resp
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // Only where a redirect leads, not its path or query: enough to fix a baseUrl.
        let location = resp
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| reqwest::Url::parse(v).ok())
            .map(|u| u.origin().ascii_serialization());
        let text = read_body(resp, MAX_ERROR_BODY, target.timeout, deadline)
            .await
            .unwrap_or_default();
        let upstream_msg = serde_json::from_slice::<Value>(&text)
            .ok()
            .and_then(|v| error::error_message(&v))
            .unwrap_or_else(|| String::from_utf8_lossy(&text).chars().take(300).collect());
        // Quoted to the caller: without any echo of the backend's credential.
        let upstream_msg = scrub(&upstream_msg, target.credential());
        let failure = Failure::from_status(status, retry_after.as_deref());
        let backend = &target.backend;
        let message = match failure {
            Failure::Auth { .. } => format!(
                "backend {backend:?} rejected the gateway's credentials ({status}): {upstream_msg}; check the Secret its credentials name"
            ),
            // The gateway chose the model id and the URL, so this is the backend's
            // configuration, not the caller's model name.
            Failure::NotFound => format!(
                "backend {backend:?} answered 404 (check its model id {:?} and base URL): {upstream_msg}",
                target.model
            ),
            Failure::Redirect { .. } => format!(
                "backend {backend:?} answered {status}, redirecting to {}; the gateway does not follow redirects (the request carries the backend's credential): set its baseUrl to where it leads",
                location.as_deref().unwrap_or("nowhere")
            ),
            _ => format!("backend {backend:?} answered {status}: {upstream_msg}"),
        };
        Failed {
            relayed,
            ..Failed::before_answer(failure, message)
        }
    }

    pub(super) async fn send(
        &self,
        target: &Target,
        body: Pieces,
        rid: &str,
        client_headers: &HeaderMap,
    ) -> Result<client::Response, client::Error> {
        send(&self.http, target, body, rid, client_headers).await
    }
}

/// The request to one backend: its credential (never the caller's key), the request id, for
/// Anthropic the caller's `anthropic-version` (or the oldest stable one), and the caller's
/// options a backend of this dialect understands (see `headers::forward`).
async fn send(
    http: &Upstream,
    target: &Target,
    body: Pieces,
    rid: &str,
    client_headers: &HeaderMap,
) -> Result<client::Response, client::Error> {
    let mut headers: Vec<(HeaderName, HeaderValue)> = Vec::with_capacity(3);
    if let Ok(v) = HeaderValue::from_str(rid) {
        headers.push((X_REQUEST_ID, v));
    }
    if let Some((name, value)) = &target.auth {
        headers.push((name.clone(), value.clone()));
    }
    if target.dialect == Dialect::Anthropic {
        let version = client_headers
            .get(ANTHROPIC_VERSION)
            .cloned()
            .unwrap_or(HeaderValue::from_static("2023-06-01"));
        headers.push((ANTHROPIC_VERSION, version));
    }
    headers::forward(target.dialect, client_headers, &mut headers);
    let http = target.client.as_ref().unwrap_or(http);
    http.post(&target.url, headers, body).await
}

/// How long to wait for the next byte: the backend's timeout, cut short by the deadline.
pub fn wait(timeout: Duration, deadline: Instant) -> Duration {
    timeout.min(deadline.saturating_duration_since(Instant::now()))
}

/// Reads a body up to `limit` bytes, each part within `idle` and all before `deadline`.
pub async fn read_body(
    resp: client::Response,
    limit: usize,
    idle: Duration,
    deadline: Instant,
) -> Result<Vec<u8>, Failed> {
    let mut out = Vec::new();
    let mut s = resp.into_body();
    loop {
        let next =
            match tokio::time::timeout(wait(idle, deadline), client::next_chunk(&mut s)).await {
                Err(_) => {
                    let why = if Instant::now() >= deadline {
                        "the request exceeded the gateway's --request-timeout".to_owned()
                    } else {
                        format!(
                            "its body stalled for longer than its timeout of {}s",
                            idle.as_secs_f64()
                        )
                    };
                    return Err(Failed::before_answer(Failure::Timeout, why));
                }
                Ok(None) => return Ok(out),
                Ok(Some(chunk)) => chunk,
            };
        let chunk = next.map_err(|e| {
            Failed::before_answer(
                Failure::Connect,
                format!("its body failed: {}", root_cause(&e)),
            )
        })?;
        if out.len() + chunk.len() > limit {
            return Err(Failed::before_answer(
                Failure::Malformed,
                format!("its body is larger than {limit} bytes"),
            ));
        }
        out.extend_from_slice(&chunk);
    }
}

pub fn timeout_failure(target: &Target, deadline: Instant) -> Failed {
    let message = if Instant::now() >= deadline {
        format!(
            "backend {:?} did not answer before the request's deadline (--request-timeout)",
            target.backend
        )
    } else {
        format!(
            "backend {:?} sent nothing within its timeout of {}s",
            target.backend,
            target.timeout.as_secs_f64()
        )
    };
    Failed::before_answer(Failure::Timeout, message)
}

/// The innermost error, which says what actually happened (reqwest wraps it twice).
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

pub fn insert_backend(resp: &mut Response, backend: &str) {
    if let Ok(v) = HeaderValue::from_str(backend) {
        resp.headers_mut().insert("x-switchyard-backend", v);
    }
}

pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
