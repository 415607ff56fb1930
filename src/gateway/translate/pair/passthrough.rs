//! Caller and backend speak the same dialect: the request goes up with only the model
//! rewritten, the answer comes back as sent, and stream events go out unparsed unless they
//! may carry usage, an error or the end of the stream.

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::super::passthrough::{Shape, Spans, rewrite_request, scan};
use super::super::response::{usage_anthropic, usage_openai};
use super::super::sse::{SseEvent, encode_into};
use super::super::{Pieces, TranslateError, Usage, error};
use super::{
    Answer, StreamTranslator, Translator, Verbatim, expect_array, parse_body, parse_event,
};
use crate::api::Dialect;
use bytes::Bytes;

/// Passthrough for one dialect and one answer shape.
pub struct Passthrough {
    dialect: Dialect,
    shape: Shape,
}

impl Passthrough {
    pub const fn new(dialect: Dialect, shape: Shape) -> Self {
        Self { dialect, shape }
    }
}

impl Translator for Passthrough {
    fn request(
        &self,
        raw: &Bytes,
        spans: &Spans,
        model: &str,
        stream: bool,
    ) -> Result<Pieces, TranslateError> {
        let include_usage = stream && self.dialect == Dialect::Openai;
        Ok(rewrite_request(raw, spans, model, include_usage))
    }

    fn response(
        &self,
        body: Vec<u8>,
        _model: &str,
        _created: i64,
    ) -> Result<Answer, TranslateError> {
        if let Some(usage) = scan(&body, self.shape) {
            return Ok(Answer { body, usage });
        }
        // Not the usual shape: the tree says what is wrong, or reads an unusual usage.
        let v = parse_body(&body)?;
        expect_array(&v, self.shape.key())?;
        let usage = match self.dialect {
            Dialect::Openai => usage_openai(&v),
            Dialect::Anthropic => usage_anthropic(&v),
        }
        .unwrap_or_default();
        Ok(Answer { body, usage })
    }

    fn stream(
        &self,
        _model: &str,
        _created: i64,
        client_wants_usage: bool,
    ) -> Box<dyn StreamTranslator> {
        match self.dialect {
            Dialect::Openai => Box::new(OpenAiStream {
                client_wants_usage,
                usage: Usage::default(),
                done: false,
            }),
            Dialect::Anthropic => Box::new(AnthropicStream {
                usage: Usage::default(),
                done: false,
            }),
        }
    }
}

struct OpenAiStream {
    client_wants_usage: bool,
    usage: Usage,
    done: bool,
}

impl StreamTranslator for OpenAiStream {
    fn push(&mut self, ev: &SseEvent, out: &mut String) -> Result<(), TranslateError> {
        let data = ev.data.trim();
        if data == "[DONE]" {
            self.done = true;
            encode_into(out, None, "[DONE]");
            return Ok(());
        }
        // Only a chunk that can carry an error or usage is parsed, and then only for those
        // fields; the rest go out as they came.
        if !data.starts_with('{') || mentions(data, b"\"error\"") {
            let v = parse_event(data)?;
            if let Some(e) = super::upstream_error(&v) {
                return Err(e);
            }
        }
        if mentions(data, b"\"usage\"") {
            let chunk: UsageChunk = serde_json::from_str(data).map_err(|e| {
                TranslateError::Malformed(format!("upstream sent an event that is not JSON: {e}"))
            })?;
            if let Some(u) = chunk
                .usage
                .filter(|u| u.prompt_tokens.is_some() || u.completion_tokens.is_some())
            {
                self.usage = Usage {
                    input: u.prompt_tokens.unwrap_or(0),
                    cached: u
                        .prompt_tokens_details
                        .and_then(|d| d.cached_tokens)
                        .unwrap_or(0),
                    output: u.completion_tokens.unwrap_or(0),
                };
            }
            // The gateway asked for the usage chunk itself; the caller gets it only if it
            // asked too.
            let usage_only = chunk.choices.is_some_and(|c| c.is_empty());
            if usage_only && !self.client_wants_usage {
                return Ok(());
            }
        }
        encode_into(out, None, &ev.data);
        Ok(())
    }

    fn done(&self) -> bool {
        self.done
    }

    fn usage(&self) -> Usage {
        self.usage
    }

    fn verbatim(&self) -> Option<Verbatim> {
        // `push` parses exactly the events that mention these (or are not JSON, which the
        // verbatim scan refuses itself) and re-encodes every other one unchanged.
        Some(Verbatim {
            markers: &[b"\"usage\"", b"\"error\"", b"[DONE]"],
            named: false,
        })
    }
}

struct AnthropicStream {
    usage: Usage,
    done: bool,
}

impl StreamTranslator for AnthropicStream {
    fn push(&mut self, ev: &SseEvent, out: &mut String) -> Result<(), TranslateError> {
        // Usage lives in two events of a stream and errors in one; the content deltas in
        // between go out unparsed.
        let name = ev.event.as_deref();
        if !matches!(
            name,
            Some("error" | "message_start" | "message_delta" | "message_stop")
        ) && ev.data.trim_start().starts_with('{')
        {
            encode_into(out, name, &ev.data);
            return Ok(());
        }
        let v = parse_event(&ev.data)?;
        match name {
            Some("error") => {
                return Err(TranslateError::Upstream(
                    error::error_message(&v).unwrap_or_else(|| "upstream error".into()),
                ));
            }
            // Input counts cache reads and writes as the non-streamed answer does.
            Some("message_start") => {
                if let Some(u) = usage_anthropic(&v["message"]["usage"]) {
                    self.usage.input = u.input;
                    self.usage.cached = u.cached;
                }
            }
            Some("message_delta") => {
                if let Some(u) = usage_anthropic(&v["usage"]) {
                    self.usage.output = u.output;
                    // Newer API versions repeat the (cumulative) input counts here.
                    if u.input > 0 {
                        self.usage.input = u.input;
                        self.usage.cached = u.cached;
                    }
                }
            }
            Some("message_stop") => self.done = true,
            _ => {}
        }
        encode_into(out, name, &ev.data);
        Ok(())
    }

    fn done(&self) -> bool {
        self.done
    }

    fn usage(&self) -> Usage {
        self.usage
    }

    fn verbatim(&self) -> Option<Verbatim> {
        // The events `push` parses by name; any event mentioning these words anywhere is
        // left to it, so none of them can slip through.
        Some(Verbatim {
            markers: &[
                b"error",
                b"message_start",
                b"message_delta",
                b"message_stop",
            ],
            named: true,
        })
    }
}

/// Whether `data` contains `key` (memchr's SIMD search: this runs on every chunk).
fn mentions(data: &str, key: &[u8]) -> bool {
    memchr::memmem::find(data.as_bytes(), key).is_some()
}

/// What is read of an OpenAI chunk that mentions usage; serde skips the rest.
#[derive(Deserialize)]
struct UsageChunk {
    #[serde(default)]
    usage: Option<UsageCounts>,
    #[serde(default)]
    choices: Option<Vec<IgnoredAny>>,
}

#[derive(Deserialize)]
struct UsageCounts {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
}

/// The part of `prompt_tokens` read from the prompt cache.
#[derive(Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}
