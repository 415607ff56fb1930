//! Caller and backend speak the same dialect: the answer goes to the caller as the upstream
//! sent it. The gateway reads only what it must — that the body has the dialect's shape, and
//! the usage — with a typed scan that skips everything else without building a tree.

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;

use super::response::{Usage, usage_anthropic, usage_openai};

/// Which array a successful answer must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// OpenAI chat completions: `choices`.
    Choices,
    /// Anthropic messages: `content`.
    Content,
    /// OpenAI embeddings: `data`.
    Data,
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    choices: Option<Vec<IgnoredAny>>,
    #[serde(default)]
    content: Option<Vec<IgnoredAny>>,
    #[serde(default)]
    data: Option<Vec<IgnoredAny>>,
    #[serde(default)]
    usage: Option<Value>,
}

/// The usage of an answer forwarded unchanged, or `None` when the body is not the
/// dialect's shape (the caller then takes the slow path, which says what is wrong).
pub fn scan(body: &[u8], shape: Shape) -> Option<Usage> {
    let a: Answer = serde_json::from_slice(body).ok()?;
    let present = match shape {
        Shape::Choices => a.choices.is_some(),
        Shape::Content => a.content.is_some(),
        Shape::Data => a.data.is_some(),
    };
    if !present {
        return None;
    }
    let usage = a.usage.as_ref().and_then(|u| match shape {
        Shape::Content => usage_anthropic(u),
        Shape::Choices | Shape::Data => usage_openai(u),
    });
    Some(usage.unwrap_or(Usage {
        input: 0,
        output: 0,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scan_reads_usage_and_shape_only() {
        let openai = br#"{"id":"x","choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":3,"completion_tokens":5},"extra":{"deep":[1,2,{"a":null}]}}"#;
        let u = scan(openai, Shape::Choices).unwrap();
        assert_eq!((u.input, u.output), (3, 5));
        let anthropic = br#"{"content":[{"type":"text","text":"hi"}],"usage":{"input_tokens":2,"cache_read_input_tokens":4,"output_tokens":7}}"#;
        let u = scan(anthropic, Shape::Content).unwrap();
        assert_eq!((u.input, u.output), (6, 7));
        let no_usage = scan(br#"{"data":[{"embedding":[0.1]}]}"#, Shape::Data).unwrap();
        assert_eq!((no_usage.input, no_usage.output), (0, 0));
    }

    #[test]
    fn anything_but_the_dialects_shape_takes_the_slow_path() {
        assert!(scan(br#"{"choices":{"not":"an array"}}"#, Shape::Choices).is_none());
        assert!(scan(br#"{"content":[]}"#, Shape::Choices).is_none());
        assert!(scan(b"{\"choices\": [", Shape::Choices).is_none());
        assert!(scan(b"[]", Shape::Choices).is_none());
    }
}
