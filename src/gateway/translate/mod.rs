//! Dialect translation between OpenAI Chat Completions and Anthropic Messages, and from
//! OpenAI's Responses API to both (`responses`).
//!
//! A caller speaks one dialect and the backend chosen for it may speak the other, so the
//! gateway converts requests, responses, errors and server-sent event streams in both
//! directions. Everything works on `serde_json::Value` rather than typed structs: fields this
//! module does not know about must never make a request fail, and the shapes of both APIs grow
//! faster than any struct definition would follow.
//!
//! The module is pure domain code (no I/O): the HTTP layer feeds it bodies and SSE bytes.
//! `pair` is its one interface: a `Translator` per (caller, backend) pair of dialects,
//! same-dialect passthrough included, chosen once per attempt.

pub mod count;
pub mod error;
pub mod pair;
pub mod passthrough;
mod pieces;
pub mod reasoning;
pub mod request;
pub mod response;
pub mod responses;
pub mod sse;
pub mod stream;
pub mod structured;
mod util;

pub use error::{anthropic_error, error_message, openai_error};
pub use pair::{Answer, StreamTranslator, Translator, Verbatim, translator, translator_for};
pub use pieces::Pieces;
pub use response::{Usage, usage_anthropic, usage_openai};
pub use sse::{SseEvent, SseParser};
pub use stream::{AnthropicToOpenAi, OpenAiToAnthropic};

/// Why a body could not be translated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// The caller's request cannot be expressed in the backend's dialect. The message names the
    /// offending field (for example `messages[2].content: ...`) because the gateway returns it
    /// verbatim as a 400 in the caller's dialect.
    #[error("{0}")]
    Invalid(String),
    /// The backend reported an error in the middle of a stream (or sent something that is not
    /// its dialect); the message is the backend's own.
    #[error("upstream error: {0}")]
    Upstream(String),
    /// The backend sent something that is not its dialect (a body or an event).
    #[error("{0}")]
    Malformed(String),
}

/// The API a request calls: it decides the shape of the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Chat,
    Embeddings,
    /// OpenAI's Responses API; served over Chat Completions unless the backend has it.
    Responses,
    /// OpenAI's legacy text completions (`POST /v1/completions`): OpenAI-dialect backends only.
    Completions,
    /// Anthropic's `POST /v1/messages/count_tokens`: nothing is generated.
    CountTokens,
}

impl Operation {
    /// Whether the caller may ask for its answer as a stream.
    pub fn streams(self) -> bool {
        matches!(
            self,
            Operation::Chat | Operation::Completions | Operation::Responses
        )
    }

    /// Whether its attempts are in the attempt, token and cost metrics. Counting tokens
    /// generates nothing: its quick answers would only skew the latency the analysis judges.
    pub fn metered(self) -> bool {
        self != Operation::CountTokens
    }
}
