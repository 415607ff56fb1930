//! Caller and backend speak the same dialect: bytes, not trees. A request goes upstream as the
//! caller wrote it with only the top-level `model` (and, for OpenAI streams, `stream_options`)
//! rewritten; the answer goes back as the upstream sent it. The gateway reads only what it
//! must — the few top-level request fields it validates and routes by, that an answer has the
//! dialect's shape, and the usage — with typed scans that borrow from the body and let serde
//! skip everything else.

use std::ops::Range;

use bytes::Bytes;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;
use serde_json::value::RawValue;

use super::Pieces;
use super::response::{Usage, usage_anthropic, usage_openai};

/// The top-level keys the gateway reads from a request, each borrowed from the body (`null`
/// reads as absent).
#[derive(Deserialize, Default)]
pub struct RequestFields<'a> {
    #[serde(borrow, default)]
    pub model: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub stream: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub stream_options: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub messages: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub max_tokens: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub max_completion_tokens: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub temperature: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub input: Option<&'a RawValue>,
    /// Legacy completions' prompt.
    #[serde(borrow, default)]
    pub prompt: Option<&'a RawValue>,
    /// Structured output: OpenAI's, and Anthropic's (GA and beta).
    #[serde(borrow, default)]
    pub response_format: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub output_config: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub output_format: Option<&'a RawValue>,
    /// The Responses API's `text.format`.
    #[serde(borrow, default)]
    pub text: Option<&'a RawValue>,
}

/// The JSON type of a raw value as error messages name it (the words of `json_kind`).
pub fn raw_kind(v: &RawValue) -> &'static str {
    match v.get().as_bytes().first() {
        Some(b'"') => "a string",
        Some(b'[') => "an array",
        Some(b'{') => "an object",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

/// Where `part`, borrowed from `whole`, lies in it.
pub fn span_of(whole: &[u8], part: &RawValue) -> Range<usize> {
    let start = part.get().as_ptr() as usize - whole.as_ptr() as usize;
    start..start + part.get().len()
}

/// Where a rewrite acts: the top-level `model` value, and `stream_options` if present.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Spans {
    pub model: Range<usize>,
    pub stream_options: Option<Range<usize>>,
}

/// The request with the backend's model id, as pieces of `raw` around the edits (see
/// [`Pieces`]). With `include_usage`, `stream_options` asks an OpenAI upstream for the usage
/// chunk; the caller's other stream options are kept.
pub fn rewrite_request(raw: &Bytes, spans: &Spans, model: &str, include_usage: bool) -> Pieces {
    let model_json = serde_json::to_string(model).unwrap_or_else(|_| "\"\"".into());
    let mut edits: Vec<(Range<usize>, Bytes)> = vec![(spans.model.clone(), model_json.into())];
    if include_usage {
        match &spans.stream_options {
            Some(r) => {
                let mut v: Value = serde_json::from_slice(&raw[r.clone()]).unwrap_or_default();
                if !v.is_object() {
                    v = serde_json::json!({});
                }
                v["include_usage"] = Value::Bool(true);
                edits.push((r.clone(), v.to_string().into()));
            }
            // Right after the model value, which validation made sure is there.
            None => {
                let at = spans.model.end;
                edits.push((
                    at..at,
                    Bytes::from_static(br#","stream_options":{"include_usage":true}"#),
                ));
            }
        }
    }
    edits.sort_by_key(|(r, _)| r.start);
    let mut out = Vec::with_capacity(2 * edits.len() + 1);
    let mut pos = 0;
    for (r, with) in edits {
        if r.start > pos {
            out.push(raw.slice(pos..r.start));
        }
        out.push(with);
        pos = r.end;
    }
    if pos < raw.len() {
        out.push(raw.slice(pos..));
    }
    Pieces(out)
}

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

impl Shape {
    /// The array's key.
    pub fn key(self) -> &'static str {
        match self {
            Shape::Choices => "choices",
            Shape::Content => "content",
            Shape::Data => "data",
        }
    }
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
    Some(usage.unwrap_or_default())
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

    fn spans(raw: &[u8]) -> Spans {
        let f: RequestFields<'_> = serde_json::from_slice(raw).unwrap();
        Spans {
            model: span_of(raw, f.model.unwrap()),
            stream_options: f.stream_options.map(|o| span_of(raw, o)),
        }
    }

    #[test]
    fn a_rewrite_touches_the_model_and_nothing_else() {
        let raw = Bytes::from_static(br#"{ "a":{"model":"inner"}, "model" :"chat" ,"n": 1.50}"#);
        let out = rewrite_request(&raw, &spans(&raw), "up\"stream", false).to_vec();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{ "a":{"model":"inner"}, "model" :"up\"stream" ,"n": 1.50}"#
        );
    }

    #[test]
    fn a_stream_asks_for_usage_whether_or_not_the_caller_gave_options() {
        let raw = Bytes::from_static(br#"{"model":"m","stream":true}"#);
        let out = rewrite_request(&raw, &spans(&raw), "b", true).to_vec();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"model":"b","stream_options":{"include_usage":true},"stream":true}"#
        );
        let raw =
            Bytes::from_static(br#"{"stream_options":{"include_usage":false,"x":1},"model":"m"}"#);
        let out: Value =
            serde_json::from_slice(&rewrite_request(&raw, &spans(&raw), "b", true).to_vec())
                .unwrap();
        assert_eq!(
            out["stream_options"],
            serde_json::json!({"include_usage": true, "x": 1})
        );
    }

    /// A large request is forwarded as slices of the bytes the caller sent around the edits:
    /// held once, not once more as a rewritten copy (what bounds memory under a flood of
    /// large bodies at the in-flight cap).
    #[test]
    fn a_rewrite_sends_the_callers_bytes_without_copying_them() {
        let padding = "x".repeat(1 << 20);
        let raw = Bytes::from(format!(
            r#"{{"messages":[{{"role":"user","content":"{padding}"}}],"model":"chat","stream":true,"tail":"{padding}"}}"#
        ));
        let pieces = rewrite_request(&raw, &spans(&raw), "backend-model", true);
        let within = |p: &Bytes| {
            let (start, end) = (raw.as_ptr() as usize, raw.as_ptr() as usize + raw.len());
            p.as_ptr() as usize >= start && p.as_ptr() as usize + p.len() <= end
        };
        let copied: usize = pieces.0.iter().filter(|p| !within(p)).map(Bytes::len).sum();
        assert!(copied < 64, "{copied} bytes copied");
        assert_eq!(pieces.len(), raw.len() + 9 + 40);
        let v: Value = serde_json::from_slice(&pieces.to_vec()).unwrap();
        assert_eq!(v["model"], "backend-model");
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(v["tail"].as_str().unwrap().len(), 1 << 20);
    }

    #[test]
    fn anything_but_the_dialects_shape_takes_the_slow_path() {
        assert!(scan(br#"{"choices":{"not":"an array"}}"#, Shape::Choices).is_none());
        assert!(scan(br#"{"content":[]}"#, Shape::Choices).is_none());
        assert!(scan(b"{\"choices\": [", Shape::Choices).is_none());
        assert!(scan(b"[]", Shape::Choices).is_none());
    }
}
