//! The Responses API's pairs: an OpenAI Responses caller served by a backend with the
//! Responses API (passthrough), by a Chat Completions backend, or by an Anthropic one.

use bytes::Bytes;
use serde_json::Value;

use super::super::passthrough::Spans;
use super::super::response::{self as chat_answer, usage_anthropic, usage_openai};
use super::super::responses::{self, ChatToResponses, answer, native};
use super::super::sse::{SseEvent, encode_into};
use super::super::stream::AnthropicToOpenAi;
use super::super::{Pieces, TranslateError, Usage, request as chat_request};
use super::{
    Answer, StreamTranslator, Translator, expect_array, parse_body, parse_event, request_tree,
    to_bytes,
};

/// A backend with the Responses API: the request goes as sent, with the backend's model
/// and `store: false` unless the caller said otherwise (`store: true` is refused before):
/// the provider keeps nothing this gateway could not serve back.
pub struct ResponsesNative;

impl Translator for ResponsesNative {
    fn request(
        &self,
        raw: &Bytes,
        _: &Spans,
        model: &str,
        _: bool,
    ) -> Result<Pieces, TranslateError> {
        let mut v = request_tree(raw)?;
        if let Some(why) = responses::refused(&v) {
            return Err(TranslateError::Invalid(why));
        }
        v["model"] = Value::String(model.to_owned());
        if v.get("store").is_none() {
            v["store"] = Value::Bool(false);
        }
        Ok(Pieces::one(to_bytes(&v)))
    }

    fn response(&self, body: Vec<u8>, _: &str, _: i64) -> Result<Answer, TranslateError> {
        let v = parse_body(&body)?;
        expect_array(&v, "output")?;
        Ok(Answer {
            usage: native::usage(&v).unwrap_or_default(),
            body,
        })
    }

    fn stream(&self, _: &str, _: i64, _: bool) -> Box<dyn StreamTranslator> {
        Box::new(NativeStream {
            usage: Usage::default(),
            done: false,
        })
    }
}

struct NativeStream {
    usage: Usage,
    done: bool,
}

impl StreamTranslator for NativeStream {
    fn push(&mut self, ev: &SseEvent, out: &mut String) -> Result<(), TranslateError> {
        let v = parse_event(&ev.data)?;
        let ty = ev
            .event
            .as_deref()
            .or(v["type"].as_str())
            .unwrap_or_default()
            .to_owned();
        match native::end_of(&ty, &v) {
            Some(native::End::Failed(m)) => return Err(TranslateError::Upstream(m)),
            Some(native::End::Answered) => {
                self.usage = native::usage(&v).unwrap_or(self.usage);
                self.done = true;
            }
            None => {}
        }
        encode_into(out, ev.event.as_deref(), &ev.data);
        Ok(())
    }

    fn done(&self) -> bool {
        self.done
    }

    fn usage(&self) -> Usage {
        self.usage
    }
}

/// A Chat Completions backend (vLLM, TGI, SGLang, any OpenAI-compatible host).
pub struct ResponsesOverChat;

impl Translator for ResponsesOverChat {
    fn request(
        &self,
        raw: &Bytes,
        _: &Spans,
        model: &str,
        _: bool,
    ) -> Result<Pieces, TranslateError> {
        Ok(Pieces::one(to_bytes(&responses::to_chat(
            &request_tree(raw)?,
            model,
        )?)))
    }

    fn response(&self, body: Vec<u8>, model: &str, created: i64) -> Result<Answer, TranslateError> {
        let v = parse_body(&body)?;
        expect_array(&v, "choices")?;
        let usage = usage_openai(&v).unwrap_or_default();
        Ok(Answer {
            body: to_bytes(&answer::from_chat(&v, model, created, &usage)),
            usage,
        })
    }

    fn stream(&self, model: &str, created: i64, _: bool) -> Box<dyn StreamTranslator> {
        Box::new(ChatStream {
            c: ChatToResponses::new(model, created),
        })
    }
}

struct ChatStream {
    c: ChatToResponses,
}

impl StreamTranslator for ChatStream {
    fn push(&mut self, ev: &SseEvent, out: &mut String) -> Result<(), TranslateError> {
        if ev.data.trim() == "[DONE]" {
            self.c.finish(out);
            return Ok(());
        }
        let v = parse_event(&ev.data)?;
        if let Some(e) = super::upstream_error(&v) {
            return Err(e);
        }
        self.c.push(&v, out);
        Ok(())
    }

    fn done(&self) -> bool {
        self.c.finished()
    }

    fn usage(&self) -> Usage {
        self.c.usage()
    }
}

/// An Anthropic Messages backend: through Chat Completions both ways, reusing the chat
/// translation rather than a third copy of it.
pub struct ResponsesOverAnthropic;

impl Translator for ResponsesOverAnthropic {
    fn request(
        &self,
        raw: &Bytes,
        _: &Spans,
        model: &str,
        _: bool,
    ) -> Result<Pieces, TranslateError> {
        let chat = responses::to_chat(&request_tree(raw)?, model)?;
        Ok(Pieces::one(to_bytes(&chat_request::openai_to_anthropic(
            &chat, model,
        )?)))
    }

    fn response(&self, body: Vec<u8>, model: &str, created: i64) -> Result<Answer, TranslateError> {
        let v = parse_body(&body)?;
        expect_array(&v, "content")?;
        let usage = usage_anthropic(&v).unwrap_or_default();
        let chat = chat_answer::anthropic_to_openai(&v, model, created);
        Ok(Answer {
            body: to_bytes(&answer::from_chat(&chat, model, created, &usage)),
            usage,
        })
    }

    fn stream(&self, model: &str, created: i64, _: bool) -> Box<dyn StreamTranslator> {
        Box::new(AnthropicStream {
            a: AnthropicToOpenAi::new(model, created, true),
            c: ChatToResponses::new(model, created),
        })
    }
}

struct AnthropicStream {
    a: AnthropicToOpenAi,
    c: ChatToResponses,
}

impl StreamTranslator for AnthropicStream {
    fn push(&mut self, ev: &SseEvent, out: &mut String) -> Result<(), TranslateError> {
        let chunks = self.a.push(ev).map_err(|e| match e {
            TranslateError::Invalid(m) => TranslateError::Malformed(m),
            other => other,
        })?;
        for chunk in &chunks {
            self.c.push(chunk, out);
        }
        if self.a.finished() {
            self.c.finish(out);
        }
        Ok(())
    }

    fn done(&self) -> bool {
        self.c.finished()
    }

    fn usage(&self) -> Usage {
        // The Anthropic side counts cache reads and writes the way the metrics want.
        self.a.usage()
    }
}
