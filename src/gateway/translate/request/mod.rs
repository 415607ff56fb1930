//! Request bodies: OpenAI Chat Completions <-> Anthropic Messages.
//!
//! Both functions take the caller's body and the backend's model id and return the body to send
//! upstream. Fields with no counterpart are dropped rather than rejected, except where dropping
//! would silently change the answer the caller gets (`n > 1`, unknown content types, tool
//! arguments that are not JSON): those are `TranslateError::Invalid` with a message naming the
//! field, because the gateway returns it as a 400 to the caller.
//!
//! Not translated (dropped) from OpenAI: `seed`, `logprobs`, `top_logprobs`, `logit_bias`,
//! `frequency_penalty`, `presence_penalty`, `stream_options`, `modalities`, `audio`,
//! `prediction`, `store`, `service_tier`, `web_search_options`, message `name`s.
//! Not translated (dropped) from Anthropic: `top_k`, thinking blocks in history (see
//! `reasoning`), `cache_control`, `service_tier`, `container`, `mcp_servers`.
//!
//! Reasoning (`reasoning_effort` <-> `thinking`) is in `reasoning`, structured outputs
//! (`response_format` <-> a forced tool, `output_config.format`) in `structured`.

mod from_anthropic;
mod from_openai;
#[cfg(test)]
mod tests;

use serde_json::{Value, json};

use super::TranslateError;
use super::util::invalid;

pub use from_anthropic::anthropic_to_openai;
pub use from_openai::openai_to_anthropic;

/// Anthropic requires `max_tokens`; OpenAI does not. Used when the caller gave no limit.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;
pub(super) fn empty_schema() -> Value {
    json!({"type": "object", "properties": {}})
}

pub(super) fn positive_int(v: &Value, path: &str) -> Result<u64, TranslateError> {
    match v.as_u64() {
        Some(n) if n > 0 => Ok(n),
        _ => Err(invalid(format!(
            "{path}: expected a positive integer, got {v}"
        ))),
    }
}
