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

/// The translator for a request `op` from a `caller` to a `backend`. Embeddings have one
/// wire shape, so they always pass through. A Responses request is translated (see
/// `translator_for` for a backend that serves the Responses API itself).
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
        (Operation::Chat, Dialect::Openai, Dialect::Openai) => &OPENAI_CHAT,
        (Operation::Chat, Dialect::Anthropic, Dialect::Anthropic) => &ANTHROPIC_CHAT,
        (Operation::Chat, Dialect::Openai, Dialect::Anthropic) => &OpenAiOverAnthropic,
        (Operation::Chat, Dialect::Anthropic, Dialect::Openai) => &AnthropicOverOpenAi,
    }
}

/// A backend's answer as a tree, or why it is not JSON.
fn parse_body(bytes: &[u8]) -> Result<Value, TranslateError> {
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
