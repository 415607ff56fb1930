//! Token counting (`POST /v1/messages/count_tokens`, Anthropic's dialect) for each kind of
//! backend: an Anthropic backend counts itself (passthrough); vLLM counts with the served
//! model's own tokenizer and chat template at `/tokenize`; any other backend has no way to
//! count, so the gateway estimates with OpenAI's o200k_base encoding.
//!
//! Nothing is generated, so no answer carries usage: the gateway's token metrics never see
//! a count.

use bytes::Bytes;
use serde_json::{Value, json};

use super::pair::{Answer, NoStream, StreamTranslator, Translator};
use super::passthrough::{Spans, rewrite_request};
use super::{Pieces, TranslateError, Usage, request};

/// An Anthropic caller counting with an Anthropic backend: the request goes up with the
/// backend's model id, the answer comes back as sent once it is seen to hold a count.
pub struct CountPassthrough;

impl Translator for CountPassthrough {
    fn request(
        &self,
        raw: &Bytes,
        spans: &Spans,
        model: &str,
        _stream: bool,
    ) -> Result<Pieces, TranslateError> {
        Ok(rewrite_request(raw, spans, model, false))
    }

    fn response(
        &self,
        body: Vec<u8>,
        _model: &str,
        _created: i64,
    ) -> Result<Answer, TranslateError> {
        let v = super::pair::parse_body(&body)?;
        input_tokens(&v, "input_tokens")?;
        Ok(Answer {
            body,
            usage: Usage::default(),
        })
    }

    fn stream(&self, _: &str, _: i64, _: bool) -> Box<dyn StreamTranslator> {
        Box::new(NoStream(NOT_STREAMED))
    }
}

/// An Anthropic caller counting with a vLLM server: its `/tokenize` applies the model's chat
/// template to the messages (in OpenAI's shape) and answers `{"count", "tokens",
/// "max_model_len"}`.
pub struct VllmTokenize;

impl Translator for VllmTokenize {
    fn request(
        &self,
        raw: &Bytes,
        _spans: &Spans,
        model: &str,
        _stream: bool,
    ) -> Result<Pieces, TranslateError> {
        let req: Value = serde_json::from_slice(raw)
            .map_err(|e| TranslateError::Invalid(format!("request body is not valid JSON: {e}")))?;
        // The chat translation carries the system prompt into the messages and the tools
        // into OpenAI's shape: the same prompt the model would see for this conversation.
        let chat = request::anthropic_to_openai(&req, model)?;
        let mut out = json!({
            "model": model,
            "messages": chat["messages"],
            // As a chat request renders it: with the assistant turn opened.
            "add_generation_prompt": true,
        });
        if let Some(tools) = chat.get("tools").filter(|t| !t.is_null()) {
            out["tools"] = tools.clone();
        }
        Ok(Pieces::one(serde_json::to_vec(&out).unwrap_or_default()))
    }

    fn response(
        &self,
        body: Vec<u8>,
        _model: &str,
        _created: i64,
    ) -> Result<Answer, TranslateError> {
        let v = super::pair::parse_body(&body)?;
        let n = input_tokens(&v, "count")?;
        Ok(Answer {
            body: answer(n),
            usage: Usage::default(),
        })
    }

    fn stream(&self, _: &str, _: i64, _: bool) -> Box<dyn StreamTranslator> {
        Box::new(NoStream(NOT_STREAMED))
    }
}

const NOT_STREAMED: &str = "a token count is never streamed";

/// The non-negative integer `key` of a count, or `Malformed`.
fn input_tokens(v: &Value, key: &str) -> Result<u64, TranslateError> {
    v.get(key)
        .and_then(Value::as_u64)
        .ok_or_else(|| TranslateError::Malformed(format!("no integer '{key}' in the count")))
}

/// Anthropic's answer to a count.
pub fn answer(input_tokens: u64) -> Vec<u8> {
    serde_json::to_vec(&json!({ "input_tokens": input_tokens })).unwrap_or_default()
}

/// Tokens a chat format adds around each message (role markers), and to open the reply: the
/// figures OpenAI documents for its chat models.
const PER_MESSAGE: u64 = 3;
const REPLY_PRIMING: u64 = 3;

/// An estimate of a count request's input tokens, for backends that cannot count: the text
/// of the system prompt, the messages (text, tool calls' names and inputs, tool results) and
/// the tools (names, descriptions, schemas) in o200k_base, plus the chat format's overhead.
/// Images and documents are not counted.
pub fn estimate(req: &Value) -> u64 {
    let mut texts: Vec<String> = vec![];
    collect(req.get("system"), &mut texts);
    let messages = req.get("messages").and_then(Value::as_array);
    for m in messages.into_iter().flatten() {
        collect(m.get("content"), &mut texts);
    }
    for t in req
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for key in ["name", "description"] {
            if let Some(s) = t.get(key).and_then(Value::as_str) {
                texts.push(s.to_owned());
            }
        }
        if let Some(schema) = t.get("input_schema") {
            texts.push(schema.to_string());
        }
    }
    let bpe = tiktoken_rs::o200k_base_singleton();
    let text: u64 = texts
        .iter()
        .map(|t| bpe.encode_ordinary(t).len() as u64)
        .sum();
    let n = messages.map_or(0, Vec::len) as u64;
    text + n * PER_MESSAGE + REPLY_PRIMING
}

/// The text of a system prompt or a message's content (a string or blocks).
fn collect(content: Option<&Value>, out: &mut Vec<String>) {
    match content {
        Some(Value::String(s)) => out.push(s.clone()),
        Some(Value::Array(blocks)) => {
            for b in blocks {
                match b.get("type").and_then(Value::as_str) {
                    Some("tool_use") => {
                        if let Some(name) = b.get("name").and_then(Value::as_str) {
                            out.push(name.to_owned());
                        }
                        if let Some(input) = b.get("input") {
                            out.push(input.to_string());
                        }
                    }
                    Some("tool_result") => collect(b.get("content"), out),
                    _ => {
                        if let Some(t) = b.get("text").and_then(Value::as_str) {
                            out.push(t.to_owned());
                        }
                    }
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_counts_system_messages_and_tools() {
        let bare = json!({"messages": [{"role": "user", "content": "Hello, world"}]});
        // "Hello, world" is 3 tokens in o200k_base, plus one message and the reply priming.
        assert_eq!(estimate(&bare), 3 + PER_MESSAGE + REPLY_PRIMING);
        let full = json!({
            "system": [{"type": "text", "text": "You are terse."}],
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "Hello, world"}]},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "get_weather", "input": {"city": "Paris"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "sunny"}]}]}
            ],
            "tools": [{"name": "get_weather", "description": "Weather of a city", "input_schema": {"type": "object"}}]
        });
        let n = estimate(&full);
        assert!(n > estimate(&bare) + 2 * PER_MESSAGE + 10, "{n}");
        let without_tools = {
            let mut v = full.clone();
            v.as_object_mut().unwrap().remove("tools");
            v
        };
        assert!(estimate(&without_tools) < n);
    }

    #[test]
    fn vllm_gets_the_messages_in_openais_shape_and_its_count_is_anthropics() {
        let raw = Bytes::from(
            json!({"model": "chat", "system": "Be brief.", "messages": [{"role": "user", "content": "hi"}],
                   "tools": [{"name": "f", "input_schema": {"type": "object"}}]})
            .to_string(),
        );
        let sent: Value = serde_json::from_slice(
            &VllmTokenize
                .request(&raw, &Spans::default(), "llama", false)
                .unwrap()
                .to_vec(),
        )
        .unwrap();
        assert_eq!(sent["model"], "llama");
        assert_eq!(
            sent["messages"][0],
            json!({"role": "system", "content": "Be brief."})
        );
        assert_eq!(sent["messages"][1]["role"], "user");
        assert_eq!(sent["tools"][0]["function"]["name"], "f");
        assert_eq!(sent["add_generation_prompt"], true);
        let a = VllmTokenize
            .response(
                br#"{"count": 17, "max_model_len": 8192, "tokens": [1, 2]}"#.to_vec(),
                "m",
                0,
            )
            .unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&a.body).unwrap(),
            json!({"input_tokens": 17})
        );
        assert_eq!(a.usage.input, 0, "a count is not usage");
        assert!(
            VllmTokenize
                .response(br#"{"tokens": []}"#.to_vec(), "m", 0)
                .is_err()
        );
        assert!(
            CountPassthrough
                .response(br#"{"input_tokens": 5}"#.to_vec(), "m", 0)
                .is_ok()
        );
        assert!(
            CountPassthrough
                .response(br#"{"content": []}"#.to_vec(), "m", 0)
                .is_err()
        );
    }
}
