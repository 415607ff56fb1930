//! The two cross pairs: an OpenAI caller served by an Anthropic backend, and the reverse.
//! Requests and answers are translated as trees; streams by the stateful converters of
//! `stream`.

use super::super::passthrough::Spans;
use super::super::response::{self, usage_anthropic, usage_openai};
use super::super::sse::{SseEvent, encode_into};
use super::super::stream::{AnthropicToOpenAi, OpenAiToAnthropic};
use super::super::{Pieces, TranslateError, Usage, request};
use super::{
    Answer, StreamTranslator, Translator, expect_array, parse_body, parse_event, request_tree,
    to_bytes,
};
use bytes::Bytes;

/// An OpenAI Chat Completions caller, an Anthropic Messages backend.
pub struct OpenAiOverAnthropic;

impl Translator for OpenAiOverAnthropic {
    fn request(
        &self,
        raw: &Bytes,
        _spans: &Spans,
        model: &str,
        _stream: bool,
    ) -> Result<Pieces, TranslateError> {
        Ok(Pieces::one(to_bytes(&request::openai_to_anthropic(
            &request_tree(raw)?,
            model,
        )?)))
    }

    fn response(&self, body: Vec<u8>, model: &str, created: i64) -> Result<Answer, TranslateError> {
        let v = parse_body(&body)?;
        expect_array(&v, "content")?;
        Ok(Answer {
            usage: usage_anthropic(&v).unwrap_or_default(),
            body: to_bytes(&response::anthropic_to_openai(&v, model, created)),
        })
    }

    fn stream(
        &self,
        model: &str,
        created: i64,
        client_wants_usage: bool,
    ) -> Box<dyn StreamTranslator> {
        Box::new(AnthropicToOpenAiStream {
            c: AnthropicToOpenAi::new(model, created, client_wants_usage),
            done: false,
        })
    }
}

struct AnthropicToOpenAiStream {
    c: AnthropicToOpenAi,
    done: bool,
}

impl StreamTranslator for AnthropicToOpenAiStream {
    fn push(&mut self, ev: &SseEvent, out: &mut String) -> Result<(), TranslateError> {
        if self.c.text_fast(ev, out) {
            return Ok(());
        }
        let chunks = self.c.push(ev).map_err(|e| match e {
            TranslateError::Invalid(m) => TranslateError::Malformed(m),
            other => other,
        })?;
        for v in &chunks {
            encode_into(out, None, &v.to_string());
        }
        if self.c.finished() && !self.done {
            self.done = true;
            encode_into(out, None, "[DONE]");
        }
        Ok(())
    }

    fn done(&self) -> bool {
        self.done
    }

    fn usage(&self) -> Usage {
        self.c.usage()
    }
}

/// An Anthropic Messages caller, an OpenAI Chat Completions backend.
pub struct AnthropicOverOpenAi;

impl Translator for AnthropicOverOpenAi {
    fn request(
        &self,
        raw: &Bytes,
        _spans: &Spans,
        model: &str,
        stream: bool,
    ) -> Result<Pieces, TranslateError> {
        let mut body = request::anthropic_to_openai(&request_tree(raw)?, model)?;
        if stream {
            body["stream_options"]["include_usage"] = serde_json::Value::Bool(true);
        }
        Ok(Pieces::one(to_bytes(&body)))
    }

    fn response(
        &self,
        body: Vec<u8>,
        model: &str,
        _created: i64,
    ) -> Result<Answer, TranslateError> {
        let v = parse_body(&body)?;
        expect_array(&v, "choices")?;
        Ok(Answer {
            usage: usage_openai(&v).unwrap_or_default(),
            body: to_bytes(&response::openai_to_anthropic(&v, model)),
        })
    }

    fn stream(
        &self,
        model: &str,
        _created: i64,
        _client_wants_usage: bool,
    ) -> Box<dyn StreamTranslator> {
        Box::new(OpenAiToAnthropicStream {
            c: OpenAiToAnthropic::new(model),
            done: false,
        })
    }
}

struct OpenAiToAnthropicStream {
    c: OpenAiToAnthropic,
    done: bool,
}

impl StreamTranslator for OpenAiToAnthropicStream {
    fn push(&mut self, ev: &SseEvent, out: &mut String) -> Result<(), TranslateError> {
        if ev.data.trim() == "[DONE]" {
            self.done = true;
            for (e, v) in self.c.finish() {
                encode_into(out, Some(&e), &v.to_string());
            }
            return Ok(());
        }
        if self.c.text_fast(&ev.data, out) {
            return Ok(());
        }
        let v = parse_event(&ev.data)?;
        if let Some(e) = super::upstream_error(&v) {
            return Err(e);
        }
        for (e, v) in self.c.push(&v) {
            encode_into(out, Some(&e), &v.to_string());
        }
        Ok(())
    }

    fn done(&self) -> bool {
        self.done
    }

    fn usage(&self) -> Usage {
        self.c.usage()
    }
}
