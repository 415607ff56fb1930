//! Relaying a streamed answer: upstream SSE events in, the caller's SSE frames out, in the
//! caller's dialect, while counting tokens. Knows when the stream ended properly, so a cut
//! stream ends with a well-formed error event instead of a hang or a silent truncation.

use serde_json::Value;

use super::translate::sse::{SseEvent, SseParser, encode, verbatim_prefix};
use super::translate::{Operation, StreamTranslator, TranslateError, Usage, error, translator_for};
use crate::api::Dialect;

/// Why a stream could not continue.
#[derive(Debug)]
pub enum RelayError {
    /// The upstream sent an error event.
    Upstream(String),
    /// The upstream sent something that is not its dialect.
    Malformed(String),
}

pub struct Relay {
    caller: Dialect,
    op: Operation,
    upstream: Wire,
    pair: Box<dyn StreamTranslator>,
    content: bool,
}

impl Relay {
    /// `client_wants_usage`: the OpenAI caller asked for `stream_options.include_usage`
    /// (the gateway always asks upstream, for its metrics, and drops the chunk otherwise).
    /// `native_responses`: the upstream is a backend's own Responses API.
    pub fn new(
        caller: Dialect,
        op: Operation,
        upstream: Dialect,
        native_responses: bool,
        model: &str,
        created: i64,
        client_wants_usage: bool,
    ) -> Self {
        Self {
            caller,
            op,
            upstream: match upstream {
                _ if native_responses && op == Operation::Responses => Wire::Responses,
                Dialect::Openai => Wire::Chat,
                Dialect::Anthropic => Wire::Messages,
            },
            pair: translator_for(op, caller, upstream, native_responses).stream(
                model,
                created,
                client_wants_usage,
            ),
            content: false,
        }
    }

    /// Whether the upstream has sent content (a token, a tool call, a finish): the point
    /// from which the answer is the caller's and the request is never sent again.
    pub fn has_content(&self) -> bool {
        self.content
    }

    /// Whether the upstream finished the stream properly.
    pub fn done(&self) -> bool {
        self.pair.done()
    }

    pub fn usage(&self) -> Usage {
        self.pair.usage()
    }

    /// How many leading bytes of an upstream read may go to the caller as they came: whole
    /// events this relay would re-encode unchanged (same dialect, past the first content,
    /// nothing it must read). The parser must be between events.
    pub fn verbatim_prefix<'a>(&self, chunk: &'a [u8], parser: &SseParser) -> &'a str {
        if !self.content || self.pair.done() || !parser.is_idle() {
            return "";
        }
        match self.pair.verbatim() {
            Some(v) => verbatim_prefix(chunk, v.markers, v.named),
            None => "",
        }
    }

    /// Appends to `out` the frames to send the caller for one upstream event.
    pub fn on_event(&mut self, ev: &SseEvent, out: &mut String) -> Result<(), RelayError> {
        if self.pair.done() {
            return Ok(());
        }
        self.pair.push(ev, out).map_err(|e| match e {
            TranslateError::Upstream(m) => RelayError::Upstream(m),
            TranslateError::Malformed(m) | TranslateError::Invalid(m) => RelayError::Malformed(m),
        })?;
        // Once content has come, every later event is the caller's anyway: no need to look.
        if !self.content {
            self.content = carries_content(self.upstream, ev);
        }
        Ok(())
    }

    /// The frame that tells the caller's SDK the stream failed.
    pub fn error_frame(&self, status: u16, message: &str) -> String {
        if self.op == Operation::Responses {
            // The Responses API's `error` event; its `error` object is what makes the
            // OpenAI SDK raise rather than hand the event on.
            let mut v = error::openai_error(status, message);
            v["type"] = "error".into();
            v["message"] = message.into();
            v["code"] = v["error"]["code"].clone();
            return encode(Some("error"), &v.to_string());
        }
        match self.caller {
            Dialect::Openai => encode(None, &error::openai_error(status, message).to_string()),
            Dialect::Anthropic => encode(
                Some("error"),
                &error::anthropic_error(status, message).to_string(),
            ),
        }
    }
}

/// The API a stream comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wire {
    Chat,
    Messages,
    Responses,
}

/// Whether an upstream event carries generated content, as opposed to the preamble every
/// stream starts with (OpenAI's role-only chunk; Anthropic's `message_start`, a text
/// `content_block_start`, `ping`; the Responses API's `response.created`, an item or part
/// opened empty).
fn carries_content(upstream: Wire, ev: &SseEvent) -> bool {
    match upstream {
        Wire::Responses => matches!(
            ev.event.as_deref(),
            Some(
                "response.output_text.delta"
                    | "response.refusal.delta"
                    | "response.function_call_arguments.delta"
                    | "response.reasoning_summary_text.delta"
                    | "response.output_item.done"
                    | "response.completed"
                    | "response.incomplete"
            )
        ),
        Wire::Chat => {
            if ev.data.trim() == "[DONE]" {
                return true;
            }
            let Ok(v) = serde_json::from_str::<Value>(&ev.data) else {
                return false;
            };
            let choices = v.get("choices").and_then(Value::as_array);
            choices.is_some_and(|cs| {
                cs.iter().any(|c| {
                    let d = &c["delta"];
                    let text = |k: &str| d[k].as_str().is_some_and(|s| !s.is_empty());
                    // Legacy completions carry their text on the choice itself.
                    c["text"].as_str().is_some_and(|s| !s.is_empty())
                        || text("content")
                        || text("refusal")
                        || d["tool_calls"].as_array().is_some_and(|t| !t.is_empty())
                        || d["function_call"].is_object()
                        || !c["finish_reason"].is_null()
                })
            })
        }
        Wire::Messages => match ev.event.as_deref() {
            Some("content_block_delta" | "message_delta" | "message_stop") => true,
            // A tool call's block names the tool: that is content already.
            Some("content_block_start") => serde_json::from_str::<Value>(&ev.data)
                .is_ok_and(|v| v["content_block"]["type"].as_str() != Some("text")),
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(event: Option<&str>, data: Value) -> SseEvent {
        SseEvent {
            event: event.map(str::to_owned),
            data: data.to_string(),
        }
    }

    #[test]
    fn the_preamble_is_not_content() {
        let chunk = |delta: Value, finish: Value| {
            ev(
                None,
                json!({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}),
            )
        };
        let openai = |e: &SseEvent| carries_content(Wire::Chat, e);
        assert!(!openai(&chunk(
            json!({"role": "assistant", "content": ""}),
            Value::Null
        )));
        assert!(openai(&chunk(json!({"content": "Hi"}), Value::Null)));
        assert!(openai(&chunk(
            json!({"tool_calls": [{"index": 0, "function": {"name": "f"}}]}),
            Value::Null
        )));
        assert!(openai(&chunk(json!({}), json!("stop"))));
        let legacy = |text: &str| {
            ev(
                None,
                json!({"object": "text_completion", "choices": [{"index": 0, "text": text, "logprobs": null, "finish_reason": null}]}),
            )
        };
        assert!(openai(&legacy("Hi")));
        assert!(!openai(&legacy("")));
        assert!(openai(&SseEvent {
            event: None,
            data: "[DONE]".into()
        }));

        let anthropic =
            |name: &str, data: Value| carries_content(Wire::Messages, &ev(Some(name), data));
        assert!(!anthropic("message_start", json!({"message": {}})));
        assert!(!anthropic(
            "content_block_start",
            json!({"content_block": {"type": "text", "text": ""}})
        ));
        assert!(!anthropic("ping", json!({})));
        assert!(anthropic(
            "content_block_start",
            json!({"content_block": {"type": "tool_use", "name": "f"}})
        ));
        assert!(anthropic(
            "content_block_delta",
            json!({"delta": {"type": "text_delta", "text": "Hi"}})
        ));
    }

    #[test]
    fn the_relay_says_when_content_started() {
        let mut r = Relay::new(
            Dialect::Openai,
            Operation::Chat,
            Dialect::Anthropic,
            false,
            "m",
            0,
            false,
        );
        let start = ev(
            Some("message_start"),
            json!({"type": "message_start", "message": {"id": "x", "usage": {"input_tokens": 1}}}),
        );
        let mut out = String::new();
        r.on_event(&start, &mut out).unwrap();
        assert!(!out.is_empty(), "the role chunk is held");
        assert!(!r.has_content());
        let delta = ev(
            Some("content_block_delta"),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}),
        );
        r.on_event(&delta, &mut out).unwrap();
        assert!(r.has_content());
    }
}
