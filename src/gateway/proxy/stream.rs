//! A streamed answer. Events before the first content token (OpenAI's role-only chunk,
//! Anthropic's `message_start`, `content_block_start`, `ping`) are held back: until content
//! arrives nothing was generated, so an error such as `overloaded_error` can still fail
//! over. The first content token commits the attempt; from then on a failure ends the stream
//! with an error event in the caller's dialect, and `--request-timeout` still bounds it.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use crate::gateway::client::next_chunk;
use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use tokio::sync::mpsc;

use super::attempt::{Failed, insert_backend, now_secs, root_cause, timeout_failure, wait};
use super::{Ctx, Gateway};
use crate::gateway::failure::Failure;
use crate::gateway::metrics::{InFlightGauge, Outcome};
use crate::gateway::relay::{Relay, RelayError};
use crate::gateway::scrub::scrub;
use crate::gateway::translate::sse::{SseEvent, SseParser};
use crate::gateway::upstream::Target;

/// Why a stream that breaks the SSE caps is refused.
const TOO_LARGE: &str = "sent a server-sent event line or event over the gateway's limit (1 MiB per line, 4 MiB per event)";

impl Gateway {
    pub(super) async fn stream(
        self: &Arc<Self>,
        ctx: &Ctx,
        target: Target,
        resp: crate::gateway::client::Response,
        started: Instant,
        gauge: InFlightGauge,
    ) -> Result<Response, Failed> {
        let (caller, req, deadline) = (ctx.caller, &ctx.req, ctx.deadline);
        let client_wants_usage = req.wants_usage;
        let mut relay = Relay::new(
            caller,
            target.dialect,
            &target.model,
            now_secs(),
            client_wants_usage,
        );
        let mut parser = SseParser::default();
        let mut upstream = resp.into_body();
        let mut held = String::new();
        // What came in the same read as the first content, after its event: it belongs to
        // the committed answer.
        let mut leftover = Bytes::new();
        // Events parsed in the same piece as the first content, after it (only when the
        // upstream's framing is not `\n\n`): committed too.
        let mut after_first: Vec<SseEvent> = vec![];
        // The first content token is the stream's first byte: it must come within the
        // backend's timeout of sending, however many preamble events or pings precede it.
        let first_content = (started + target.timeout).min(deadline);
        while !relay.has_content() && !relay.done() {
            let left = first_content.saturating_duration_since(Instant::now());
            let chunk = match ctx
                .upstream(tokio::time::timeout(left, next_chunk(&mut upstream)))
                .await
            {
                Err(_) => return Err(timeout_failure(&target, deadline)),
                Ok(None) => {
                    return Err(Failed::before_answer(
                        Failure::Malformed,
                        format!(
                            "backend {:?} ended its stream before sending any content",
                            target.backend
                        ),
                    ));
                }
                Ok(Some(Err(e))) => {
                    return Err(Failed::before_answer(
                        Failure::Connect,
                        format!(
                            "backend {:?} stream failed: {}",
                            target.backend,
                            root_cause(&e)
                        ),
                    ));
                }
                Ok(Some(Ok(c))) => c,
            };
            // Event by event (pieces cut after each blank line) until the first content, so
            // that the rest of the read is relayed as the committed stream is, plain runs of
            // events as they came.
            let mut at = 0;
            while at < chunk.len() && !relay.has_content() && !relay.done() {
                let end =
                    memchr::memmem::find(&chunk[at..], b"\n\n").map_or(chunk.len(), |i| at + i + 2);
                let events = parser.push(&chunk[at..end]);
                at = end;
                if parser.too_large() {
                    return Err(Failed::before_answer(
                        Failure::Malformed,
                        format!("backend {:?} {TOO_LARGE}", target.backend),
                    ));
                }
                for ev in events {
                    if relay.has_content() || relay.done() {
                        after_first.push(ev);
                    } else {
                        precommit(&mut relay, &ev, &mut held, &target)?;
                    }
                }
            }
            leftover = chunk.slice(at..);
        }
        target.metrics.first_token(started.elapsed().as_secs_f64());

        let (tx, rx) = mpsc::channel::<Bytes>(32);
        let backend = target.backend.clone();
        let backend_header = backend.clone();
        let request_timeout = self.cfg.request_timeout;
        let tenant = ctx.who.tenant.clone();
        tokio::spawn(async move {
            let mut client_gone = false;
            // Frames of one upstream read go to the client as one write: an upstream that
            // sends 100 events in one packet costs one syscall, not 100.
            let mut out = held;
            let mut failure: Option<(u16, String)> = None;
            let first = after_first.iter().try_for_each(|ev| {
                relay.on_event(ev, &mut out).map_err(
                    |(RelayError::Upstream(m) | RelayError::Malformed(m))| format!(": {m}"),
                )
            });
            if let Err(m) =
                first.and_then(|()| relay_chunk(&mut relay, &mut parser, &leftover, &mut out))
            {
                failure = Some((
                    502,
                    format!("backend {backend:?}{}", scrub(&m, target.credential())),
                ));
            }
            flush(&tx, &mut out, &mut client_gone).await;
            while failure.is_none() && !client_gone && !relay.done() {
                match tokio::time::timeout(
                    wait(target.timeout, deadline),
                    next_chunk(&mut upstream),
                )
                .await
                {
                    Err(_) if Instant::now() >= deadline => {
                        failure = Some((
                            504,
                            format!(
                                "the answer exceeded the gateway's --request-timeout of {}s",
                                request_timeout.as_secs_f64()
                            ),
                        ))
                    }
                    Err(_) => {
                        failure = Some((
                            502,
                            format!(
                                "backend {backend:?} stalled mid-stream for {}s",
                                target.timeout.as_secs_f64()
                            ),
                        ))
                    }
                    Ok(None) => {
                        failure = Some((
                            502,
                            format!("backend {backend:?} ended the stream before it was complete"),
                        ))
                    }
                    Ok(Some(Err(e))) => {
                        failure = Some((
                            502,
                            format!("backend {backend:?} stream failed: {}", root_cause(&e)),
                        ))
                    }
                    Ok(Some(Ok(chunk))) => {
                        if let Err(m) = relay_chunk(&mut relay, &mut parser, &chunk, &mut out) {
                            failure = Some((
                                502,
                                format!("backend {backend:?}{}", scrub(&m, target.credential())),
                            ));
                        }
                        flush(&tx, &mut out, &mut client_gone).await;
                    }
                }
            }
            // Committed: no failover is possible. End with an error event the caller's SDK
            // understands, then close.
            let code = match &failure {
                Some((status, msg)) => {
                    let _ = tx.send(Bytes::from(relay.error_frame(*status, msg))).await;
                    if *status == 504 {
                        "timeout"
                    } else {
                        "stream_error"
                    }
                }
                None if client_gone => "499",
                None => "200",
            };
            let outcome = if failure.is_some() {
                Outcome::Error
            } else {
                Outcome::Success
            };
            let m = &target.metrics;
            m.attempt(&tenant, outcome, code, started.elapsed().as_secs_f64());
            let usage = relay.usage();
            m.tokens(&tenant, usage.input, usage.output, target.price);
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
}

/// Relays one read of a committed stream into `out`: plain events of the same dialect as
/// the bytes they came in, the rest (usage, errors, the end, translated events) through the
/// parser. `Err` completes "backend X" with the upstream's failure (": …" or " sent …").
fn relay_chunk(
    relay: &mut Relay,
    parser: &mut SseParser,
    chunk: &[u8],
    out: &mut String,
) -> Result<(), String> {
    let verbatim = relay.verbatim_prefix(chunk, parser);
    out.push_str(verbatim);
    let events = parser.push(&chunk[verbatim.len()..]);
    if parser.too_large() {
        return Err(format!(" {TOO_LARGE}"));
    }
    for ev in events {
        relay
            .on_event(&ev, out)
            .map_err(|(RelayError::Upstream(m) | RelayError::Malformed(m))| format!(": {m}"))?;
    }
    Ok(())
}

/// One event before the first content: held back; an error here may still fail over.
fn precommit(
    relay: &mut Relay,
    ev: &SseEvent,
    held: &mut String,
    target: &Target,
) -> Result<(), Failed> {
    match relay.on_event(ev, held) {
        Ok(()) => Ok(()),
        Err(RelayError::Upstream(m)) => Err(Failed::before_answer(
            Failure::Server { status: 502 },
            format!(
                "backend {:?} streamed an error: {}",
                target.backend,
                scrub(&m, target.credential())
            ),
        )),
        Err(RelayError::Malformed(m)) => Err(Failed::before_answer(
            Failure::Malformed,
            format!("backend {:?}: {m}", target.backend),
        )),
    }
}

/// Sends what `out` holds as one frame.
async fn flush(tx: &mpsc::Sender<Bytes>, out: &mut String, client_gone: &mut bool) {
    if !out.is_empty() {
        *client_gone |= tx.send(Bytes::from(std::mem::take(out))).await.is_err();
    }
}
