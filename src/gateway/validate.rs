//! Checks a client's request before anything is routed, so mistakes get a 400 in the
//! caller's dialect that says what to fix, instead of an upstream's confusion.

use serde_json::Value;

use super::translate::json_kind;
use super::upstream::Operation;
use crate::api::Dialect;

/// The client's request: its parsed body and the facts routing needs.
pub struct Request {
    pub body: Value,
    pub model: String,
    pub stream: bool,
}

pub fn validate(caller: Dialect, op: Operation, body: Value) -> Result<Request, String> {
    let obj = body
        .as_object()
        .ok_or("the request body must be a JSON object")?;
    let model = match obj.get("model") {
        None | Some(Value::Null) => return Err("missing required parameter: 'model'".into()),
        Some(Value::String(m)) if m.trim().is_empty() => {
            return Err("'model' must not be empty".into());
        }
        Some(Value::String(m)) => m.clone(),
        Some(other) => {
            return Err(format!(
                "'model' must be a string, got {}",
                json_kind(other)
            ));
        }
    };
    let stream = match obj.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(format!(
                "'stream' must be a boolean, got {}",
                json_kind(other)
            ));
        }
    };
    match op {
        Operation::Chat => {
            let messages = match obj.get("messages") {
                None | Some(Value::Null) => {
                    return Err("missing required parameter: 'messages'".into());
                }
                Some(Value::Array(m)) => m,
                Some(other) => {
                    return Err(format!(
                        "'messages' must be an array, got {}",
                        json_kind(other)
                    ));
                }
            };
            if messages.is_empty() {
                return Err("'messages' must contain at least one message".into());
            }
            for (i, m) in messages.iter().enumerate() {
                match m.get("role") {
                    Some(Value::String(_)) => {}
                    None => return Err(format!("messages[{i}]: missing required field 'role'")),
                    Some(other) => {
                        return Err(format!(
                            "messages[{i}].role must be a string, got {}",
                            json_kind(other)
                        ));
                    }
                }
            }
            if caller == Dialect::Anthropic {
                match obj.get("max_tokens") {
                    Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n > 0) => {}
                    None => return Err("max_tokens: Field required".into()),
                    Some(_) => return Err("max_tokens: must be a positive integer".into()),
                }
            }
            for key in ["max_tokens", "max_completion_tokens"] {
                if let Some(v) = obj.get(key).filter(|v| !v.is_null())
                    && v.as_u64().is_none_or(|n| n == 0)
                {
                    return Err(format!("'{key}' must be a positive integer, got {v}"));
                }
            }
            if let Some(t) = obj.get("temperature").filter(|v| !v.is_null())
                && !t.is_number()
            {
                return Err(format!(
                    "'temperature' must be a number, got {}",
                    json_kind(t)
                ));
            }
        }
        Operation::Embeddings => match obj.get("input") {
            Some(Value::String(_)) | Some(Value::Array(_)) => {}
            None | Some(Value::Null) => return Err("missing required parameter: 'input'".into()),
            Some(other) => {
                return Err(format!(
                    "'input' must be a string or an array, got {}",
                    json_kind(other)
                ));
            }
        },
    }
    Ok(Request {
        model,
        stream: stream && op == Operation::Chat,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chat(caller: Dialect, v: Value) -> Result<Request, String> {
        validate(caller, Operation::Chat, v)
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
            json!({"model": "e", "input": ["a"]}),
        );
        assert!(e.is_ok());
    }
}
