//! Relaying a streamed answer: upstream SSE events in, the caller's SSE frames out, in the
//! caller's dialect, while counting tokens. Knows when the stream ended properly, so a cut
//! stream ends with a well-formed error event instead of a hang or a silent truncation.

use serde_json::Value;

use super::translate::sse::{SseEvent, SseParser, encode, verbatim_prefix};
use super::translate::{Operation, StreamTranslator, TranslateError, Usage, error, translator};
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
    upstream: Dialect,
    pair: Box<dyn StreamTranslator>,
    content: bool,
}

impl Relay {
    /// `client_wants_usage`: the OpenAI caller asked for `stream_options.include_usage`
    /// (the gateway always asks upstream, for its metrics, and drops the chunk otherwise).
    pub fn new(
        op: Operation,
        caller: Dialect,
        upstream: Dialect,
        model: &str,
        created: i64,
        client_wants_usage: bool,
    ) -> Self {
        Self {
            caller,
            upstream,
            pair: translator(op, caller, upstream).stream(model, created, client_wants_usage),
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
        match self.caller {
            Dialect::Openai => encode(None, &error::openai_error(status, message).to_string()),
            Dialect::Anthropic => encode(
                Some("error"),
                &error::anthropic_error(status, message).to_string(),
            ),
        }
    }
}

/// Whether an upstream event carries generated content, as opposed to the preamble every
/// stream starts with (OpenAI's role-only chunk; Anthropic's `message_start`, a text
/// `content_block_start`, `ping`).
fn carries_content(upstream: Dialect, ev: &SseEvent) -> bool {
    match upstream {
        Dialect::Openai => {
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
        Dialect::Anthropic => match ev.event.as_deref() {
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
        let openai = |e: &SseEvent| carries_content(Dialect::Openai, e);
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
            |name: &str, data: Value| carries_content(Dialect::Anthropic, &ev(Some(name), data));
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
            Operation::Chat,
            Dialect::Openai,
            Dialect::Anthropic,
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
