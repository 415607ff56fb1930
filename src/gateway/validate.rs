//! Checks a client's request before anything is routed, so mistakes get a 400 in the
//! caller's dialect that says what to fix, instead of an upstream's confusion.

use std::sync::Arc;

use axum::body::Bytes;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::structured::{self, Asked, Expect};
use super::translate::passthrough::{RequestFields, Spans, raw_kind, span_of};
use super::upstream::Operation;
use crate::api::Dialect;

/// The client's request: its bytes as received and the facts routing needs. The body is
/// parsed into a tree only when a translator needs one.
#[derive(Clone)]
pub struct Request {
    pub raw: Bytes,
    /// Where the top-level `model` and `stream_options` values lie in `raw`.
    pub spans: Spans,
    pub model: String,
    pub stream: bool,
    /// The caller set `stream_options.include_usage`: it gets the usage chunk.
    pub wants_usage: bool,
    /// The caller asked for JSON (mode or schema): its answer is judged.
    pub structured: Option<Arc<Expect>>,
}

/// A message is checked for its role only; serde skips the rest.
#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow, default)]
    role: Option<&'a RawValue>,
}

fn positive_int(v: &RawValue) -> bool {
    v.get().parse::<u64>().is_ok_and(|n| n > 0)
}

/// The deepest nesting of arrays and objects a request may have: serde_json's own limit when
/// it builds a tree (translation does), and far beyond any real request. Parts of a request
/// the gateway passes on unparsed would otherwise carry any depth to the provider.
pub const MAX_DEPTH: usize = 128;

/// Whether `raw` nests arrays and objects deeper than [`MAX_DEPTH`]; one pass over the
/// bytes, skipping strings.
fn too_deep(raw: &[u8]) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in raw {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

pub fn validate(caller: Dialect, op: Operation, raw: Bytes) -> Result<Request, String> {
    if too_deep(&raw) {
        return Err(format!(
            "request body is not valid JSON: it nests arrays and objects deeper than {MAX_DEPTH} levels"
        ));
    }
    // A struct also deserializes from an array, so the object check comes first.
    if raw.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        if serde_json::from_slice::<serde::de::IgnoredAny>(&raw).is_err() {
            let e = serde_json::from_slice::<Value>(&raw).err();
            return Err(format!(
                "request body is not valid JSON: {}",
                e.map(|e| e.to_string()).unwrap_or_default()
            ));
        }
        return Err("the request body must be a JSON object".into());
    }
    let obj: RequestFields<'_> =
        serde_json::from_slice(&raw).map_err(|e| format!("request body is not valid JSON: {e}"))?;
    let model_raw = match obj.model {
        None => return Err("missing required parameter: 'model'".into()),
        Some(m) if m.get().starts_with('"') => m,
        Some(other) => {
            return Err(format!("'model' must be a string, got {}", raw_kind(other)));
        }
    };
    let model: String = serde_json::from_str(model_raw.get()).map_err(|e| e.to_string())?;
    if model.trim().is_empty() {
        return Err("'model' must not be empty".into());
    }
    let stream = match obj.stream {
        None => false,
        Some(b) if b.get() == "true" => true,
        Some(b) if b.get() == "false" => false,
        Some(other) => {
            return Err(format!(
                "'stream' must be a boolean, got {}",
                raw_kind(other)
            ));
        }
    };
    match op {
        Operation::Chat => {
            check_messages(obj.messages)?;
            if caller == Dialect::Anthropic {
                match obj.max_tokens {
                    Some(n) if positive_int(n) => {}
                    None => return Err("max_tokens: Field required".into()),
                    Some(_) => return Err("max_tokens: must be a positive integer".into()),
                }
            }
            for (key, v) in [
                ("max_tokens", obj.max_tokens),
                ("max_completion_tokens", obj.max_completion_tokens),
            ] {
                if let Some(v) = v
                    && !positive_int(v)
                {
                    return Err(format!(
                        "'{key}' must be a positive integer, got {}",
                        v.get()
                    ));
                }
            }
            if let Some(t) = obj.temperature
                && raw_kind(t) != "a number"
            {
                return Err(format!(
                    "'temperature' must be a number, got {}",
                    raw_kind(t)
                ));
            }
        }
        Operation::Responses => {
            check_input(obj.input)?;
            let stored: StoredFields<'_> =
                serde_json::from_slice(&raw).map_err(|e| e.to_string())?;
            if let Some(why) = stored.refused() {
                return Err(why);
            }
        }
        Operation::Embeddings => check_input(obj.input)?,
        Operation::Completions => {
            match obj.prompt {
                Some(p) if matches!(raw_kind(p), "a string" | "an array") => {}
                None => return Err("missing required parameter: 'prompt'".into()),
                Some(other) => {
                    return Err(format!(
                        "'prompt' must be a string or an array (of strings or token arrays), got {}",
                        raw_kind(other)
                    ));
                }
            }
            if let Some(v) = obj.max_tokens
                && !positive_int(v)
            {
                return Err(format!(
                    "'max_tokens' must be a positive integer, got {}",
                    v.get()
                ));
            }
        }
        Operation::CountTokens => check_messages(obj.messages)?,
    }
    let wants_usage = obj
        .stream_options
        .and_then(|o| serde_json::from_str::<StreamOptions>(o.get()).ok())
        .is_some_and(|o| o.include_usage == Some(true));
    // Judged for chat and the Responses API: embeddings have no text to judge.
    let structured = match op {
        Operation::Chat | Operation::Responses => structured::requested(
            structured::Api::of(caller, op),
            &Asked {
                response_format: obj.response_format,
                output_config: obj.output_config,
                output_format: obj.output_format,
                text: obj.text,
            },
        ),
        Operation::Embeddings | Operation::Completions | Operation::CountTokens => None,
    };
    let spans = Spans {
        model: span_of(&raw, model_raw),
        stream_options: obj.stream_options.map(|o| span_of(&raw, o)),
    };
    Ok(Request {
        spans,
        model,
        stream: stream && op.streams(),
        wants_usage,
        structured,
        raw,
    })
}

/// The Responses API fields that need responses stored on the server, which the gateway
/// does not keep: refused before routing, whatever the backend.
#[derive(Deserialize)]
struct StoredFields<'a> {
    #[serde(borrow, default)]
    previous_response_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    store: Option<&'a RawValue>,
    #[serde(borrow, default)]
    background: Option<&'a RawValue>,
    #[serde(borrow, default)]
    conversation: Option<&'a RawValue>,
}

impl StoredFields<'_> {
    fn refused(&self) -> Option<String> {
        let set = |v: Option<&RawValue>| v.is_some_and(|v| !matches!(v.get(), "null" | "false"));
        let mut probe = serde_json::Map::new();
        for (key, v) in [
            ("previous_response_id", self.previous_response_id),
            ("store", self.store),
            ("background", self.background),
            ("conversation", self.conversation),
        ] {
            if set(v) {
                probe.insert(key.into(), serde_json::from_str(v?.get()).ok()?);
            }
        }
        super::translate::responses::refused(&Value::Object(probe))
    }
}

/// The `input` of embeddings and of the Responses API: a string or an array.
fn check_input(input: Option<&RawValue>) -> Result<(), String> {
    match input {
        Some(i) if matches!(raw_kind(i), "a string" | "an array") => Ok(()),
        None => Err("missing required parameter: 'input'".into()),
        Some(other) => Err(format!(
            "'input' must be a string or an array, got {}",
            raw_kind(other)
        )),
    }
}

/// A non-empty array of messages, each an object with a string `role`.
fn check_messages(messages: Option<&RawValue>) -> Result<(), String> {
    let messages = match messages {
        None => return Err("missing required parameter: 'messages'".into()),
        Some(m) if m.get().starts_with('[') => m,
        Some(other) => {
            return Err(format!(
                "'messages' must be an array, got {}",
                raw_kind(other)
            ));
        }
    };
    let messages: Vec<&RawValue> =
        serde_json::from_str(messages.get()).map_err(|e| e.to_string())?;
    if messages.is_empty() {
        return Err("'messages' must contain at least one message".into());
    }
    for (i, m) in messages.iter().enumerate() {
        let role = serde_json::from_str::<Message<'_>>(m.get())
            .ok()
            .filter(|_| m.get().starts_with('{'))
            .and_then(|m| m.role);
        match role {
            Some(r) if r.get().starts_with('"') => {}
            None => return Err(format!("messages[{i}]: missing required field 'role'")),
            Some(other) => {
                return Err(format!(
                    "messages[{i}].role must be a string, got {}",
                    raw_kind(other)
                ));
            }
        }
    }
    Ok(())
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

#[cfg(test)]
mod tests {

    #[test]
    fn nesting_deeper_than_the_limit_is_refused_wherever_it_is() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        let body = |inner: &str| {
            Bytes::from(format!(
                r#"{{"model": "m", "messages": [{{"role": "user", "content": {inner}}}]}}"#
            ))
        };
        let Err(e) = validate(Dialect::Openai, Operation::Chat, body(&deep(5000))) else {
            panic!("accepted");
        };
        assert!(e.contains("deeper than 128 levels"), "{e}");
        // Brackets inside strings do not count; a normal request passes.
        let text = format!("\"{}\\\" {}\"", "[".repeat(500), "{".repeat(500));
        assert!(validate(Dialect::Openai, Operation::Chat, body(&text)).is_ok());
        assert!(validate(Dialect::Openai, Operation::Chat, body(&deep(100))).is_ok());
    }

    use super::*;
    use serde_json::json;

    fn chat(caller: Dialect, v: Value) -> Result<Request, String> {
        validate(caller, Operation::Chat, v.to_string().into())
    }

    #[test]
    fn explains_what_is_wrong() {
        let e = |v| chat(Dialect::Openai, v).err().unwrap();
        assert_eq!(e(json!([1])), "the request body must be a JSON object");
        assert_eq!(
            e(json!({"messages": []})),
            "missing required parameter: 'model'"
        );
        assert_eq!(
            e(json!({"model": 5, "messages": []})),
            "'model' must be a string, got a number"
        );
        assert_eq!(
            e(json!({"model": "m"})),
            "missing required parameter: 'messages'"
        );
        assert_eq!(
            e(json!({"model": "m", "messages": "hi"})),
            "'messages' must be an array, got a string"
        );
        assert_eq!(
            e(json!({"model": "m", "messages": [{}]})),
            "messages[0]: missing required field 'role'"
        );
        assert_eq!(
            e(json!({"model": "m", "messages": [{"role": "user"}], "stream": "yes"})),
            "'stream' must be a boolean, got a string"
        );
        assert_eq!(
            e(json!({"model": "m", "messages": [{"role": "user"}], "max_tokens": -1})),
            "'max_tokens' must be a positive integer, got -1"
        );
        let a = chat(
            Dialect::Anthropic,
            json!({"model": "m", "messages": [{"role": "user"}]}),
        );
        assert_eq!(a.err().unwrap(), "max_tokens: Field required");
    }

    #[test]
    fn accepts_good_requests() {
        let r = chat(
            Dialect::Openai,
            json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}], "stream": true}),
        )
        .unwrap();
        assert_eq!((r.model.as_str(), r.stream), ("chat", true));
        let e = validate(
            Dialect::Openai,
            Operation::Embeddings,
            json!({"model": "e", "input": ["a"]}).to_string().into(),
        );
        assert!(e.is_ok());
    }

    #[test]
    fn legacy_completions_need_a_prompt_and_may_stream() {
        let v = |v: Value| {
            validate(
                Dialect::Openai,
                Operation::Completions,
                v.to_string().into(),
            )
        };
        let r = v(json!({"model": "m", "prompt": "Say hi", "stream": true})).unwrap();
        assert!(r.stream);
        assert!(v(json!({"model": "m", "prompt": [[1, 2], [3]]})).is_ok());
        assert_eq!(
            v(json!({"model": "m"})).err().unwrap(),
            "missing required parameter: 'prompt'"
        );
        assert_eq!(
            v(json!({"model": "m", "prompt": 5})).err().unwrap(),
            "'prompt' must be a string or an array (of strings or token arrays), got a number"
        );
        assert_eq!(
            v(json!({"model": "m", "prompt": "x", "max_tokens": 0}))
                .err()
                .unwrap(),
            "'max_tokens' must be a positive integer, got 0"
        );
    }

    #[test]
    fn a_count_needs_messages_but_no_max_tokens_and_never_streams() {
        let v = |v: Value| {
            validate(
                Dialect::Anthropic,
                Operation::CountTokens,
                v.to_string().into(),
            )
        };
        let r = v(
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": true}),
        )
        .unwrap();
        assert!(!r.stream);
        assert_eq!(
            v(json!({"model": "m"})).err().unwrap(),
            "missing required parameter: 'messages'"
        );
        assert_eq!(
            v(json!({"model": "m", "messages": [{"content": "x"}]}))
                .err()
                .unwrap(),
            "messages[0]: missing required field 'role'"
        );
    }
}
