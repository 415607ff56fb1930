//! Structured-output validity: for a request that asked for JSON (OpenAI `response_format`
//! `json_object` or `json_schema`; Anthropic `output_config.format` or the beta
//! `output_format`, both `json_schema`; the Responses API's `text.format`), whether the answer's text parses as JSON and fits
//! the schema. Judged on the answer the caller gets (its dialect), so every pair of
//! dialects is judged alike; counted in `switchyard_structured_output_total`.
//!
//! A request that asked for none of these carries `None` and costs nothing: no text is
//! collected and the stream's verbatim paths are untouched.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::metrics::Structured;
use super::translate::Operation;
use super::translate::sse::SseParser;
use crate::api::Dialect;

/// The API whose answers are read: Chat Completions, Anthropic Messages or the Responses API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Chat(Dialect),
    Responses,
}

impl Api {
    pub fn of(caller: Dialect, op: Operation) -> Self {
        match op {
            Operation::Responses => Api::Responses,
            _ => Api::Chat(caller),
        }
    }
}

/// What a request asked its answer to be.
#[derive(Debug, Clone, PartialEq)]
pub enum Expect {
    /// Any JSON (JSON mode, or a schema request without a schema).
    Json,
    /// JSON that validates against this schema.
    Schema(Value),
}

/// The fields that ask for structured output, as the caller sent them (`None`: absent).
#[derive(Default)]
pub struct Asked<'a> {
    pub response_format: Option<&'a RawValue>,
    pub output_config: Option<&'a RawValue>,
    pub output_format: Option<&'a RawValue>,
    pub text: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Format {
    #[serde(rename = "type")]
    kind: Option<String>,
    /// OpenAI: `{"name", "schema", "strict"}`.
    json_schema: Option<JsonSchema>,
    /// Anthropic: the schema itself.
    schema: Option<Value>,
}

#[derive(Deserialize)]
struct JsonSchema {
    schema: Option<Value>,
}

#[derive(Deserialize)]
struct OutputConfig {
    format: Option<Format>,
}

/// The Responses API's `text`: `{"format": {"type", "name", "schema", "strict"}}`.
#[derive(Deserialize)]
struct TextConfig {
    format: Option<Format>,
}

/// What `caller`'s request asked for; `None` when it asked for no structured output, or in a
/// shape the providers would refuse anyway (those answers are not judged).
pub fn requested(api: Api, asked: &Asked<'_>) -> Option<Arc<Expect>> {
    let parse = |raw: &RawValue| serde_json::from_str::<Format>(raw.get()).ok();
    let expect = match api {
        Api::Responses => {
            let f = serde_json::from_str::<TextConfig>(asked.text?.get())
                .ok()?
                .format?;
            match f.kind.as_deref()? {
                "json_object" => Expect::Json,
                "json_schema" => f.schema.map_or(Expect::Json, Expect::Schema),
                _ => return None,
            }
        }
        Api::Chat(Dialect::Openai) => {
            let f = parse(asked.response_format?)?;
            match f.kind.as_deref()? {
                "json_object" => Expect::Json,
                "json_schema" => match f.json_schema.and_then(|j| j.schema) {
                    Some(s) => Expect::Schema(s),
                    None => Expect::Json,
                },
                _ => return None,
            }
        }
        Api::Chat(Dialect::Anthropic) => {
            // The GA field first; the beta one still works for a while.
            let f = match asked.output_config {
                Some(c) => serde_json::from_str::<OutputConfig>(c.get()).ok()?.format?,
                None => parse(asked.output_format?)?,
            };
            if f.kind.as_deref()? != "json_schema" {
                return None;
            }
            f.schema.map_or(Expect::Json, Expect::Schema)
        }
    };
    Some(Arc::new(expect))
}

/// How an answer's text fares against what was asked.
pub fn judge(expect: &Expect, text: &str) -> Structured {
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        return Structured::InvalidJson;
    };
    match expect {
        Expect::Json => Structured::Valid,
        Expect::Schema(schema) => match crate::schema::is_valid(schema, &value) {
            true => Structured::Valid,
            false => Structured::SchemaMismatch,
        },
    }
}

/// The text of a non-streamed answer in the `caller`'s dialect; `None` when the answer is a
/// tool call (not the structured answer, so not judged).
pub fn answer_text(api: Api, body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    match api {
        Api::Responses => {
            let mut text = String::new();
            for item in v["output"].as_array()? {
                match item["type"].as_str() {
                    Some("function_call") => return None,
                    Some("message") => {
                        for part in item["content"].as_array().map_or(&[][..], Vec::as_slice) {
                            if part["type"] == "output_text" {
                                text.push_str(part["text"].as_str().unwrap_or_default());
                            }
                        }
                    }
                    _ => {}
                }
            }
            Some(text)
        }
        Api::Chat(Dialect::Openai) => {
            let message = &v["choices"][0]["message"];
            if message["tool_calls"]
                .as_array()
                .is_some_and(|t| !t.is_empty())
            {
                return None;
            }
            // A refusal has no content: the caller got no JSON, so it counts as invalid.
            Some(message["content"].as_str().unwrap_or_default().to_owned())
        }
        Api::Chat(Dialect::Anthropic) => {
            let blocks = v["content"].as_array()?;
            let mut text = String::new();
            for b in blocks {
                match b["type"].as_str() {
                    Some("tool_use") => return None,
                    Some("text") => text.push_str(b["text"].as_str().unwrap_or_default()),
                    _ => {}
                }
            }
            Some(text)
        }
    }
}

/// The text of a streamed answer, gathered from the frames the caller is sent.
pub struct Collector {
    caller: Api,
    expect: Arc<Expect>,
    parser: SseParser,
    text: String,
    tool_call: bool,
}

impl Collector {
    pub fn new(caller: Api, expect: Arc<Expect>) -> Self {
        Self {
            caller,
            expect,
            parser: SseParser::default(),
            text: String::new(),
            tool_call: false,
        }
    }

    /// Reads frames as they go to the caller.
    pub fn feed(&mut self, frames: &[u8]) {
        let (caller, text, tool_call) = (self.caller, &mut self.text, &mut self.tool_call);
        let _ = self.parser.push_each(frames, |ev| {
            // Only events that can carry text or a tool call are parsed.
            let relevant = match caller {
                Api::Responses => matches!(
                    ev.event.as_deref(),
                    Some("response.output_text.delta" | "response.output_item.added")
                ),
                Api::Chat(Dialect::Openai) => ev.data.starts_with('{'),
                Api::Chat(Dialect::Anthropic) => matches!(
                    ev.event.as_deref(),
                    Some("content_block_delta" | "content_block_start")
                ),
            };
            if relevant && let Ok(v) = serde_json::from_str::<Value>(&ev.data) {
                take_delta(caller, &v, text, tool_call);
            }
            Ok::<(), std::convert::Infallible>(())
        });
    }

    /// The verdict on the whole answer; `None` when it was a tool call.
    pub fn judge(&self) -> Option<Structured> {
        (!self.tool_call).then(|| judge(&self.expect, &self.text))
    }
}

fn take_delta(caller: Api, v: &Value, text: &mut String, tool_call: &mut bool) {
    match caller {
        Api::Responses => {
            if v["item"]["type"] == "function_call" {
                *tool_call = true;
            }
            if v["type"] == "response.output_text.delta"
                && let Some(t) = v["delta"].as_str()
            {
                text.push_str(t);
            }
        }
        Api::Chat(Dialect::Openai) => {
            let delta = &v["choices"][0]["delta"];
            if let Some(t) = delta["content"].as_str() {
                text.push_str(t);
            }
            if delta["tool_calls"]
                .as_array()
                .is_some_and(|t| !t.is_empty())
            {
                *tool_call = true;
            }
        }
        Api::Chat(Dialect::Anthropic) => {
            if v["content_block"]["type"].as_str() == Some("tool_use") {
                *tool_call = true;
            }
            let delta = &v["delta"];
            if delta["type"].as_str() == Some("text_delta")
                && let Some(t) = delta["text"].as_str()
            {
                text.push_str(t);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    impl From<Dialect> for Api {
        fn from(d: Dialect) -> Self {
            Api::Chat(d)
        }
    }

    fn asked(caller: impl Into<Api>, body: Value) -> Option<Expect> {
        let raw = body.to_string();
        #[derive(Deserialize)]
        struct F<'a> {
            #[serde(borrow)]
            response_format: Option<&'a RawValue>,
            #[serde(borrow)]
            output_config: Option<&'a RawValue>,
            #[serde(borrow)]
            output_format: Option<&'a RawValue>,
            #[serde(borrow)]
            text: Option<&'a RawValue>,
        }
        let f: F<'_> = serde_json::from_str(&raw).unwrap();
        let a = Asked {
            response_format: f.response_format,
            output_config: f.output_config,
            output_format: f.output_format,
            text: f.text,
        };
        requested(caller.into(), &a).map(|e| (*e).clone())
    }

    #[test]
    fn what_each_dialect_asks_for() {
        let s = json!({"type": "object"});
        let o = Dialect::Openai;
        assert_eq!(
            asked(o, json!({"response_format": {"type": "json_object"}})),
            Some(Expect::Json)
        );
        assert_eq!(
            asked(
                o,
                json!({"response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": s, "strict": true}}})
            ),
            Some(Expect::Schema(s.clone()))
        );
        assert_eq!(asked(o, json!({"response_format": {"type": "text"}})), None);
        assert_eq!(asked(o, json!({"response_format": "json"})), None);
        assert_eq!(asked(o, json!({})), None);
        let a = Dialect::Anthropic;
        let fmt = json!({"type": "json_schema", "schema": s});
        assert_eq!(
            asked(
                a,
                json!({"output_config": {"format": fmt, "effort": "low"}})
            ),
            Some(Expect::Schema(s.clone()))
        );
        assert_eq!(
            asked(a, json!({"output_format": fmt})),
            Some(Expect::Schema(s.clone()))
        );
        assert_eq!(asked(a, json!({"output_config": {"effort": "low"}})), None);
        // Each dialect's own field only.
        assert_eq!(
            asked(a, json!({"response_format": {"type": "json_object"}})),
            None
        );
        let r = Api::Responses;
        assert_eq!(
            asked(
                r,
                json!({"text": {"format": {"type": "json_schema", "name": "n", "schema": s}}})
            ),
            Some(Expect::Schema(s.clone()))
        );
        assert_eq!(
            asked(r, json!({"text": {"format": {"type": "json_object"}}})),
            Some(Expect::Json)
        );
        assert_eq!(
            asked(r, json!({"text": {"format": {"type": "text"}}})),
            None
        );
        assert_eq!(
            asked(r, json!({"response_format": {"type": "json_object"}})),
            None
        );
    }

    #[test]
    fn a_responses_answer_is_judged_on_its_message_text_streamed_or_not() {
        let body = json!({"output": [{"type": "reasoning", "summary": []}, {"type": "message",
            "content": [{"type": "output_text", "text": "{\"a\": 1}"}]}]});
        assert_eq!(
            answer_text(Api::Responses, body.to_string().as_bytes()).as_deref(),
            Some("{\"a\": 1}")
        );
        let call = json!({"output": [{"type": "function_call", "name": "f", "arguments": "{}"}]});
        assert_eq!(
            answer_text(Api::Responses, call.to_string().as_bytes()),
            None
        );

        let mut c = Collector::new(Api::Responses, Arc::new(Expect::Json));
        for d in ["{\\\"a\\\"", ": 1}"] {
            c.feed(format!("event: response.output_text.delta\ndata: {{\"type\":\"response.output_text.delta\",\"delta\":\"{d}\"}}\n\n").as_bytes());
        }
        assert_eq!(c.judge(), Some(Structured::Valid));
        c.feed(b"event: response.output_item.added\ndata: {\"type\":\"response.output_item.added\",\"item\":{\"type\":\"function_call\"}}\n\n");
        assert_eq!(c.judge(), None, "a tool call is not judged");
    }

    #[test]
    fn answers_are_judged_on_their_text() {
        let schema = Expect::Schema(
            json!({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}),
        );
        assert_eq!(judge(&schema, r#" {"a": "x"} "#), Structured::Valid);
        assert_eq!(judge(&schema, r#"{"a": 1}"#), Structured::SchemaMismatch);
        assert_eq!(judge(&schema, r#"{"a": "x""#), Structured::InvalidJson);
        assert_eq!(
            judge(&Expect::Json, "```json\n{}\n```"),
            Structured::InvalidJson
        );
        assert_eq!(judge(&Expect::Json, "[1]"), Structured::Valid);
    }

    #[test]
    fn streamed_text_is_gathered_from_either_dialect() {
        let mut c = Collector::new(Api::Chat(Dialect::Openai), Arc::new(Expect::Json));
        for part in ["{\\\"a\\\"", ": 1}"] {
            let frame = format!(
                "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{part}\"}}}}]}}\n\n"
            );
            // Split anywhere, as network reads are.
            let (x, y) = frame.as_bytes().split_at(7);
            c.feed(x);
            c.feed(y);
        }
        c.feed(b"data: [DONE]\n\n");
        assert_eq!(c.text, r#"{"a": 1}"#);
        assert_eq!(c.judge(), Some(Structured::Valid));

        let mut c = Collector::new(Api::Chat(Dialect::Anthropic), Arc::new(Expect::Json));
        c.feed(b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"{\\\"a\\\"\"}}\n\n");
        assert_eq!(c.judge(), Some(Structured::InvalidJson));
        c.feed(b"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"name\":\"f\"}}\n\n");
        assert_eq!(c.judge(), None, "a tool call is not judged");
    }
}
