//! Mirror copies: a share of requests also goes to the backends `status.mirror` lists, in
//! the background, recorded as shadow traffic; the client never waits for them.

use std::sync::Arc;
use std::time::Instant;

use axum::http::HeaderMap;
use serde_json::Value;

use super::attempt::{MAX_RESPONSE_BODY, read_body};
use super::{Gateway, upstream_body};
use crate::api::Dialect;
use crate::gateway::metrics::{AttemptLabels, Outcome};
use crate::gateway::translate;
use crate::gateway::upstream::Operation;
use crate::gateway::validate::Request;

impl Gateway {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn spawn_shadow(
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
            let Ok(target) = gw.resolver().resolve(&ns, &backend, op, false) else {
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
            let deadline = started + target.timeout;
            let result = tokio::time::timeout(
                target.timeout,
                gw.send(&target, &body, &rid, &HeaderMap::new()),
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
