//! Mirror copies: a share of requests also goes to the backends `status.mirror` lists, in
//! the background, recorded as shadow traffic; the client never waits for them.

use std::sync::Arc;
use std::time::Instant;

use axum::http::HeaderMap;
use serde_json::Value;

use super::attempt::{MAX_RESPONSE_BODY, read_body};
use super::{Ctx, Gateway, upstream_body};
use crate::api::Dialect;
use crate::gateway::metrics::Outcome;
use crate::gateway::translate;
use crate::gateway::upstream::{self, Operation};
use crate::gateway::validate::{Request, validate};

impl Gateway {
    /// Sends a copy of the request to the route's backend at `at`.
    pub(super) fn spawn_shadow(self: &Arc<Self>, ctx: &Ctx, at: usize) {
        let gw = self.clone();
        let route = ctx.route.clone();
        let (caller, op) = (ctx.caller, ctx.op);
        let rid = format!("{}-shadow", ctx.rid);
        let tenant = ctx.who.tenant.clone();
        let req = ctx.req.clone();
        tokio::spawn(async move {
            // A mirror copy never streams: nobody reads it.
            let shadow = if req.stream {
                match as_not_streamed(caller, op, &req) {
                    Some(r) => r,
                    None => return,
                }
            } else {
                req
            };
            let Ok(target) = upstream::resolve(&route.backends[at], op, false) else {
                return;
            };
            let Ok(body) = upstream_body(caller, op, &shadow, &target) else {
                return;
            };
            let started = Instant::now();
            let deadline = started + target.timeout;
            let result = tokio::time::timeout(
                target.timeout,
                gw.send(&target, body, &rid, &HeaderMap::new()),
            )
            .await;
            let (code, usage) = match result {
                Ok(Ok(resp)) => {
                    let status = resp.status().as_u16();
                    let bytes = read_body(resp, MAX_RESPONSE_BODY, target.timeout, deadline)
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
            let m = &target.metrics;
            m.attempt(
                &tenant,
                Outcome::Shadow,
                &code,
                started.elapsed().as_secs_f64(),
            );
            if let Some(u) = usage {
                m.tokens(&tenant, u, target.price);
            }
        });
    }
}

/// The request without `stream` and `stream_options`, validated again for its new spans.
fn as_not_streamed(caller: Dialect, op: Operation, req: &Request) -> Option<Request> {
    let mut body: serde_json::Map<String, Value> = serde_json::from_slice(&req.raw).ok()?;
    body.remove("stream");
    body.remove("stream_options");
    let raw = serde_json::to_vec(&body).ok()?;
    validate(caller, op, raw.into()).ok()
}
