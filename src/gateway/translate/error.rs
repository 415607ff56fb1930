//! Error bodies in each dialect. SDKs decide what to raise (and whether to retry) from the
//! status code, and show the `message`; the `type`/`code` strings follow each vendor's
//! conventions so that callers matching on them keep working.

use serde_json::{Value, json};

/// An OpenAI error body: `{"error": {"message", "type", "param", "code"}}`.
pub fn openai_error(status: u16, message: &str) -> Value {
    let (ty, code) = match status {
        401 => ("authentication_error", None),
        403 => ("permission_error", None),
        // OpenAI reports an unknown model as an invalid request with this code.
        404 => ("invalid_request_error", Some("model_not_found")),
        413 => ("invalid_request_error", Some("request_too_large")),
        429 => ("rate_limit_error", Some("rate_limit_exceeded")),
        503 => ("api_error", Some("service_unavailable")),
        400..=499 => ("invalid_request_error", None),
        _ => ("api_error", None),
    };
    json!({"error": {"message": message, "type": ty, "param": null, "code": code}})
}

/// An Anthropic error body: `{"type": "error", "error": {"type", "message"}}`.
pub fn anthropic_error(status: u16, message: &str) -> Value {
    let ty = match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        504 => "timeout_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    };
    json!({"type": "error", "error": {"type": ty, "message": message}})
}

/// The human-readable message of an error body in either dialect (or the common shapes of
/// self-hosted servers: `{"message": ..}`, `{"detail": ..}`, `{"error": "..."}`).
pub fn error_message(body: &Value) -> Option<String> {
    let candidates = [
        &body["error"]["message"],
        &body["error"],
        &body["message"],
        &body["detail"],
    ];
    candidates
        .into_iter()
        .find_map(|v| v.as_str().filter(|s| !s.is_empty()))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_shapes() {
        assert_eq!(
            openai_error(400, "messages[0].content: bad"),
            json!({"error": {"message": "messages[0].content: bad", "type": "invalid_request_error", "param": null, "code": null}})
        );
        let cases = [
            (401, "authentication_error", Value::Null),
            (403, "permission_error", Value::Null),
            (404, "invalid_request_error", json!("model_not_found")),
            (413, "invalid_request_error", json!("request_too_large")),
            (422, "invalid_request_error", Value::Null),
            (429, "rate_limit_error", json!("rate_limit_exceeded")),
            (500, "api_error", Value::Null),
            (502, "api_error", Value::Null),
            (503, "api_error", json!("service_unavailable")),
        ];
        for (status, ty, code) in cases {
            let e = openai_error(status, "m");
            assert_eq!(e["error"]["type"], ty, "{status}");
            assert_eq!(e["error"]["code"], code, "{status}");
        }
    }

    #[test]
    fn anthropic_shapes() {
        assert_eq!(
            anthropic_error(429, "slow down"),
            json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}})
        );
        let cases = [
            (400, "invalid_request_error"),
            (401, "authentication_error"),
            (403, "permission_error"),
            (404, "not_found_error"),
            (413, "request_too_large"),
            (422, "invalid_request_error"),
            (500, "api_error"),
            (502, "api_error"),
            (503, "overloaded_error"),
            (529, "overloaded_error"),
            (504, "timeout_error"),
        ];
        for (status, ty) in cases {
            assert_eq!(
                anthropic_error(status, "m")["error"]["type"],
                ty,
                "{status}"
            );
        }
    }

    #[test]
    fn message_extraction() {
        assert_eq!(
            error_message(&openai_error(400, "bad request")).as_deref(),
            Some("bad request")
        );
        assert_eq!(
            error_message(&anthropic_error(529, "Overloaded")).as_deref(),
            Some("Overloaded")
        );
        assert_eq!(
            error_message(&json!({"object": "error", "message": "vllm says no"})).as_deref(),
            Some("vllm says no")
        );
        assert_eq!(
            error_message(&json!({"detail": "Not Found"})).as_deref(),
            Some("Not Found")
        );
        assert_eq!(
            error_message(&json!({"error": "plain"})).as_deref(),
            Some("plain")
        );
        assert_eq!(error_message(&json!({"ok": true})), None);
        assert_eq!(error_message(&json!("text")), None);
    }
}
