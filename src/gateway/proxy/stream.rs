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

use super::attempt::{Failed, insert_backend, now_secs, root_cause, timeout_failure, wait};
use super::{Ctx, Gateway, headers};
use crate::gateway::failure::Failure;
use crate::gateway::metrics::{InFlightGauge, Outcome};
use crate::gateway::relay::{Relay, RelayError};
use crate::gateway::scrub::scrub;
use crate::gateway::structured::{Api, Collector};
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
        let relayed = headers::rate_limits(resp.headers());
        let mut relay = Relay::new(
            caller,
            ctx.op,
            target.dialect,
            target.native_responses,
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
                parser.push_each(&chunk[at..end], |ev| {
                    if relay.has_content() || relay.done() {
                        after_first.push(ev.clone());
                        Ok(())
                    } else {
                        precommit(&mut relay, ev, &mut held, &target)
                    }
                })?;
                at = end;
                if parser.too_large() {
                    return Err(Failed::before_answer(
                        Failure::Malformed,
                        format!("backend {:?} {TOO_LARGE}", target.backend),
                    ));
                }
            }
            leftover = chunk.slice(at..);
        }
        target.metrics.first_token(started.elapsed().as_secs_f64());

        // Frames of one upstream read go to the client as one write: an upstream that sends
        // 100 events in one packet costs one syscall, not 100. The body itself reads the
        // upstream as the client's connection polls it (no task, no channel between them),
        // so a fast upstream's whole answer, headers included, can leave in one write.
        let mut out = held;
        let mut failure = None;
        let first = after_first
            .iter()
            .try_for_each(|ev| relay_event(&mut relay, ev, &mut out));
        if let Err(m) =
            first.and_then(|()| relay_chunk(&mut relay, &mut parser, &leftover, &mut out))
        {
            failure = Some((
                502,
                format!(
                    "backend {:?}{}",
                    target.backend,
                    scrub(&m, target.credential())
                ),
            ));
        }
        let backend = target.backend.clone();
        let committed = Committed {
            relay,
            parser,
            upstream,
            out,
            failure,
            request_timeout: self.cfg.request_timeout,
            deadline,
            started,
            tenant: ctx.who.tenant.clone(),
            collector: req
                .structured
                .as_ref()
                .map(|e| Box::new(Collector::new(Api::of(caller, ctx.op), e.clone()))),
            target,
            _gauge: gauge,
            ended: false,
        };
        let body = Body::from_stream(futures::stream::unfold(committed, |mut c| async move {
            c.next().await.map(|b| (Ok::<_, Infallible>(b), c))
        }));
        let mut resp = Response::new(body);
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        insert_backend(&mut resp, &backend);
        headers::relay(&mut resp, &relayed);
        Ok(resp)
    }
}

/// A committed stream, read from the upstream as the client takes it. Its attempt is
/// recorded once: at the end, or when the client goes away (the body is dropped).
struct Committed {
    relay: Relay,
    parser: SseParser,
    upstream: hyper::body::Incoming,
    /// The caller's frames not yet sent.
    out: String,
    /// Status and message of the failure that ends the stream.
    failure: Option<(u16, String)>,
    request_timeout: std::time::Duration,
    deadline: Instant,
    started: Instant,
    tenant: Arc<str>,
    /// The answer's text, gathered when the request asked for JSON (`None` otherwise).
    collector: Option<Box<Collector>>,
    target: Target,
    _gauge: InFlightGauge,
    /// The attempt is recorded.
    ended: bool,
}

impl Committed {
    /// The next frame for the caller; `None` once the stream has ended (recorded then).
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if !self.out.is_empty() {
                if let Some(c) = &mut self.collector {
                    c.feed(self.out.as_bytes());
                }
                // The last frame of a complete answer: recorded before it goes, so a client
                // that closes as soon as it has it is not counted as gone.
                if self.relay.done() && self.failure.is_none() && !self.ended {
                    self.end(Outcome::Success, "200");
                }
                return Some(Bytes::from(std::mem::take(&mut self.out)));
            }
            if self.ended {
                return None;
            }
            if let Some((status, msg)) = &self.failure {
                // Committed: no failover is possible. End with an error event the caller's
                // SDK understands, then close.
                let frame = self.relay.error_frame(*status, msg);
                let code = if *status == 504 {
                    "timeout"
                } else {
                    "stream_error"
                };
                self.end(Outcome::Error, code);
                return Some(Bytes::from(frame));
            }
            if self.relay.done() {
                self.end(Outcome::Success, "200");
                return None;
            }
            let backend = &self.target.backend;
            match tokio::time::timeout(
                wait(self.target.timeout, self.deadline),
                next_chunk(&mut self.upstream),
            )
            .await
            {
                Err(_) if Instant::now() >= self.deadline => {
                    self.failure = Some((
                        504,
                        format!(
                            "the answer exceeded the gateway's --request-timeout of {}s",
                            self.request_timeout.as_secs_f64()
                        ),
                    ))
                }
                Err(_) => {
                    self.failure = Some((
                        502,
                        format!(
                            "backend {backend:?} stalled mid-stream for {}s",
                            self.target.timeout.as_secs_f64()
                        ),
                    ))
                }
                Ok(None) => {
                    self.failure = Some((
                        502,
                        format!("backend {backend:?} ended the stream before it was complete"),
                    ))
                }
                Ok(Some(Err(e))) => {
                    self.failure = Some((
                        502,
                        format!("backend {backend:?} stream failed: {}", root_cause(&e)),
                    ))
                }
                Ok(Some(Ok(chunk))) => {
                    if let Err(m) =
                        relay_chunk(&mut self.relay, &mut self.parser, &chunk, &mut self.out)
                    {
                        self.failure = Some((
                            502,
                            format!("backend {backend:?}{}", scrub(&m, self.target.credential())),
                        ));
                    }
                }
            }
        }
    }

    fn end(&mut self, outcome: Outcome, code: &str) {
        self.ended = true;
        let m = &self.target.metrics;
        m.attempt(
            &self.tenant,
            outcome,
            code,
            self.started.elapsed().as_secs_f64(),
        );
        let usage = self.relay.usage();
        m.tokens(&self.tenant, usage, self.target.price);
        // Only a complete answer is judged: a cut one is an error already, and the text of
        // one the client left is not what it would have been.
        if outcome == Outcome::Success
            && code == "200"
            && &*self.tenant != crate::gateway::auth::EVALUATION_TENANT
            && let Some(verdict) = self.collector.as_ref().and_then(|c| c.judge())
        {
            m.structured(verdict);
        }
    }
}

impl Drop for Committed {
    /// The client went away before the end: what was relayed so far is counted.
    fn drop(&mut self) {
        if !self.ended {
            self.end(Outcome::Success, "499");
        }
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
    parser
        .push_each(&chunk[verbatim.len()..], |ev| relay_event(relay, ev, out))
        .and_then(|()| match parser.too_large() {
            true => Err(format!(" {TOO_LARGE}")),
            false => Ok(()),
        })
}

/// One event of a committed stream into `out`; `Err` completes "backend X" with the
/// upstream's failure.
fn relay_event(relay: &mut Relay, ev: &SseEvent, out: &mut String) -> Result<(), String> {
    relay
        .on_event(ev, out)
        .map_err(|(RelayError::Upstream(m) | RelayError::Malformed(m))| format!(": {m}"))
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
