//! One interface for every (caller, backend) pair of dialects. The gateway picks the pair's
//! `Translator` once per attempt and calls it for the request, the answer and, for a stream,
//! a `StreamTranslator` fed one upstream event at a time. Same-dialect pairs are passthrough
//! (bytes in, bytes out, usage read on the side); the two cross pairs translate.

mod cross;
mod passthrough;
mod responses;
#[cfg(test)]
mod tests;

use serde_json::Value;

use bytes::Bytes;

use super::Pieces;
use super::count::{CountPassthrough, VllmTokenize};
use super::sse::SseEvent;
use super::{Operation, TranslateError, Usage};
use crate::api::Dialect;
pub use cross::{AnthropicOverOpenAi, OpenAiOverAnthropic};
pub use passthrough::Passthrough;

use super::passthrough::{Shape, Spans};

/// A backend's answer, in the caller's dialect, and what it used.
#[derive(Debug)]
pub struct Answer {
    pub body: Vec<u8>,
    pub usage: Usage,
}

/// Translation for one (caller, backend) pair.
pub trait Translator: Sync {
    /// The body to send the backend: the caller's request `raw` (`spans` locate its `model`
    /// and `stream_options`) in the backend's dialect, with the backend's model id. A stream
    /// to an OpenAI-dialect backend asks for the usage chunk, for the token metrics.
    fn request(
        &self,
        raw: &Bytes,
        spans: &Spans,
        model: &str,
        stream: bool,
    ) -> Result<Pieces, TranslateError>;

    /// The caller's answer from a backend's 2xx body. `Malformed` when the body is not the
    /// backend's dialect; `created` stamps answers made in the OpenAI dialect.
    fn response(&self, body: Vec<u8>, model: &str, created: i64) -> Result<Answer, TranslateError>;

    /// The state of one streamed answer. `client_wants_usage`: an OpenAI caller asked for
    /// `stream_options.include_usage` (the usage chunk is dropped otherwise).
    fn stream(
        &self,
        model: &str,
        created: i64,
        client_wants_usage: bool,
    ) -> Box<dyn StreamTranslator>;
}

/// One streamed answer: upstream events in, the caller's SSE frames out.
pub trait StreamTranslator: Send {
    /// Appends to `out` the caller's frames for one upstream event. `Upstream` is an error
    /// the backend streamed; `Malformed`, an event that is not its dialect.
    fn push(&mut self, ev: &SseEvent, out: &mut String) -> Result<(), TranslateError>;
    /// Whether the upstream finished the stream properly (and the caller got its end frame).
    fn done(&self) -> bool;
    /// What the stream used so far.
    fn usage(&self) -> Usage;
    /// For a pair that re-encodes ordinary events exactly as they came (same dialect): what
    /// marks the events it must see, and whether `event:` lines are kept. Runs of other
    /// events may then go to the caller as the bytes they came in (`sse::verbatim_prefix`).
    fn verbatim(&self) -> Option<Verbatim> {
        None
    }
}

/// See [`StreamTranslator::verbatim`].
#[derive(Debug, Clone, Copy)]
pub struct Verbatim {
    /// Byte strings that appear in every event the translator must parse (usage, errors,
    /// the end), and possibly in others: an event containing one is never passed verbatim.
    pub markers: &'static [&'static [u8]],
    /// Whether `event:` lines go out as they came (Anthropic) or would be dropped (OpenAI,
    /// whose events have none).
    pub named: bool,
}

static OPENAI_CHAT: Passthrough = Passthrough::new(Dialect::Openai, Shape::Choices);
static ANTHROPIC_CHAT: Passthrough = Passthrough::new(Dialect::Anthropic, Shape::Content);
static OPENAI_EMBEDDINGS: Passthrough = Passthrough::new(Dialect::Openai, Shape::Data);
static ANTHROPIC_EMBEDDINGS: Passthrough = Passthrough::new(Dialect::Anthropic, Shape::Data);

static OPENAI_COMPLETIONS: Passthrough = Passthrough::new(Dialect::Openai, Shape::Choices);
static NO_COMPLETIONS: Lacks = Lacks(LEGACY_COMPLETIONS_NEED_OPENAI);

/// Why an Anthropic-dialect backend cannot serve `POST /v1/completions`.
pub const LEGACY_COMPLETIONS_NEED_OPENAI: &str = "legacy completions (POST /v1/completions) need an OpenAI-dialect backend (an OpenAI-compatible provider or a self-hosted server); Anthropic Messages has no text completions: use POST /v1/chat/completions";

/// The translator for a request `op` from a `caller` to a `backend`. Embeddings and legacy
/// completions have one wire shape, so they pass through (completions to OpenAI-dialect
/// backends only). Token counts go to an Anthropic backend as they are and to an
/// OpenAI-dialect one (vLLM, the only one that can count) as a `/tokenize` call. A
/// Responses request is translated (see `translator_for` for a backend that serves the
/// Responses API itself).
pub fn translator(op: Operation, caller: Dialect, backend: Dialect) -> &'static dyn Translator {
    translator_for(op, caller, backend, false)
}

/// `translator`, knowing whether the backend serves the Responses API (`native_responses`).
pub fn translator_for(
    op: Operation,
    caller: Dialect,
    backend: Dialect,
    native_responses: bool,
) -> &'static dyn Translator {
    match (op, caller, backend) {
        (Operation::Responses, _, Dialect::Openai) if native_responses => {
            &responses::ResponsesNative
        }
        (Operation::Responses, _, Dialect::Openai) => &responses::ResponsesOverChat,
        (Operation::Responses, _, Dialect::Anthropic) => &responses::ResponsesOverAnthropic,
        (Operation::Embeddings, _, Dialect::Openai) => &OPENAI_EMBEDDINGS,
        (Operation::Embeddings, _, Dialect::Anthropic) => &ANTHROPIC_EMBEDDINGS,
        (Operation::Completions, _, Dialect::Openai) => &OPENAI_COMPLETIONS,
        (Operation::Completions, _, Dialect::Anthropic) => &NO_COMPLETIONS,
        (Operation::CountTokens, _, Dialect::Anthropic) => &CountPassthrough,
        (Operation::CountTokens, _, Dialect::Openai) => &VllmTokenize,
        (Operation::Chat, Dialect::Openai, Dialect::Openai) => &OPENAI_CHAT,
        (Operation::Chat, Dialect::Anthropic, Dialect::Anthropic) => &ANTHROPIC_CHAT,
        (Operation::Chat, Dialect::Openai, Dialect::Anthropic) => &OpenAiOverAnthropic,
        (Operation::Chat, Dialect::Anthropic, Dialect::Openai) => &AnthropicOverOpenAi,
    }
}

/// A backend whose dialect lacks the operation: every request is refused with why.
struct Lacks(&'static str);

impl Translator for Lacks {
    fn request(&self, _: &Bytes, _: &Spans, _: &str, _: bool) -> Result<Pieces, TranslateError> {
        Err(TranslateError::Invalid(self.0.into()))
    }

    fn response(&self, _: Vec<u8>, _: &str, _: i64) -> Result<Answer, TranslateError> {
        Err(TranslateError::Malformed(self.0.into()))
    }

    fn stream(&self, _: &str, _: i64, _: bool) -> Box<dyn StreamTranslator> {
        Box::new(NoStream(self.0))
    }
}

/// The stream of an answer that never streams: any event is refused with why.
pub(in crate::gateway::translate) struct NoStream(pub &'static str);

impl StreamTranslator for NoStream {
    fn push(&mut self, _: &SseEvent, _: &mut String) -> Result<(), TranslateError> {
        Err(TranslateError::Malformed(self.0.into()))
    }

    fn done(&self) -> bool {
        false
    }

    fn usage(&self) -> Usage {
        Usage::default()
    }
}

/// The caller's request as a tree, for the pairs that translate it; validation already
/// accepted it as JSON.
fn request_tree(raw: &[u8]) -> Result<Value, TranslateError> {
    serde_json::from_slice(raw)
        .map_err(|e| TranslateError::Invalid(format!("request body is not valid JSON: {e}")))
}

/// A translated tree as the bytes to send.
fn to_bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

/// A backend's answer as a tree, or why it is not JSON.
pub(in crate::gateway::translate) fn parse_body(bytes: &[u8]) -> Result<Value, TranslateError> {
    serde_json::from_slice(bytes).map_err(|e| TranslateError::Malformed(e.to_string()))
}

/// A backend's event as a tree, or why it is not JSON.
fn parse_event(data: &str) -> Result<Value, TranslateError> {
    serde_json::from_str(data).map_err(|e| {
        TranslateError::Malformed(format!("upstream sent an event that is not JSON: {e}"))
    })
}

/// `Malformed` unless `v` has the array `key` a successful answer carries.
fn expect_array(v: &Value, key: &str) -> Result<(), TranslateError> {
    if v.get(key).is_some_and(Value::is_array) {
        Ok(())
    } else {
        Err(TranslateError::Malformed(format!("no '{key}' array")))
    }
}

/// The backend's error message when an OpenAI-dialect chunk is an error.
fn upstream_error(v: &Value) -> Option<TranslateError> {
    v.get("error").filter(|e| !e.is_null())?;
    Some(TranslateError::Upstream(
        super::error::error_message(v).unwrap_or_else(|| "upstream error".into()),
    ))
}
