//! What the gateway reads from a Responses API answer it passes through: usage (for the
//! token and cost metrics) and the end of a stream.

use serde_json::Value;

use super::super::Usage;

/// The usage of a `response` object (or of an event carrying one under `response`).
pub fn usage(v: &Value) -> Option<Usage> {
    let u = if v["response"]["usage"].is_object() {
        &v["response"]["usage"]
    } else {
        &v["usage"]
    };
    let input = u["input_tokens"].as_u64();
    let output = u["output_tokens"].as_u64();
    if input.is_none() && output.is_none() {
        return None;
    }
    Some(Usage {
        input: input.unwrap_or(0),
        cached: u["input_tokens_details"]["cached_tokens"]
            .as_u64()
            .unwrap_or(0),
        output: output.unwrap_or(0),
    })
}

/// How a Responses stream event ends the stream, if it does.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// `response.completed` or `response.incomplete`: the answer is whole.
    Answered,
    /// `error` or `response.failed`: the backend's message.
    Failed(String),
}

pub fn end_of(event_type: &str, v: &Value) -> Option<End> {
    match event_type {
        "response.completed" | "response.incomplete" => Some(End::Answered),
        "response.failed" => Some(End::Failed(
            v["response"]["error"]["message"]
                .as_str()
                .unwrap_or("the backend failed the response")
                .to_owned(),
        )),
        "error" => Some(End::Failed(
            v["message"]
                .as_str()
                .or(v["error"]["message"].as_str())
                .unwrap_or("upstream error")
                .to_owned(),
        )),
        _ => None,
    }
}
