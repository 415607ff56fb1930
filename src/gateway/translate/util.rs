//! Small helpers shared by the translators: error construction that names the JSON type found,
//! and `data:` URL handling for images and documents.

use serde_json::Value;

use super::TranslateError;

pub(crate) fn invalid(message: impl Into<String>) -> TranslateError {
    TranslateError::Invalid(message.into())
}

/// The JSON type of `v` as an API caller would read it in an error message.
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `"{path}: expected {expected}, got {kind}"`.
pub(crate) fn expected(path: &str, expected: &str, got: &Value) -> TranslateError {
    invalid(format!("{path}: expected {expected}, got {}", kind(got)))
}

/// A required string field of an object.
pub(crate) fn req_str<'a>(
    obj: &'a serde_json::Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<&'a str, TranslateError> {
    match obj.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(expected(&format!("{path}.{key}"), "a string", other)),
        None => Err(invalid(format!("{path}.{key}: required field is missing"))),
    }
}

/// An optional field that is absent or `null` reads as `None`.
pub(crate) fn present<'a>(obj: &'a serde_json::Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

/// A base64 `data:` URL split into media type and payload.
pub(crate) struct DataUrl<'a> {
    pub media_type: &'a str,
    pub data: &'a str,
}

/// Parses `data:<media type>;base64,<payload>`. Returns `Ok(None)` when `url` is not a data
/// URL at all, and an error when it is one but not base64 (neither API accepts other encodings).
pub(crate) fn parse_data_url<'a>(
    url: &'a str,
    path: &str,
) -> Result<Option<DataUrl<'a>>, TranslateError> {
    let Some(rest) = url.strip_prefix("data:") else {
        return Ok(None);
    };
    let Some((meta, data)) = rest.split_once(',') else {
        return Err(invalid(format!("{path}: malformed data URL (no comma)")));
    };
    let Some(media_type) = meta.strip_suffix(";base64") else {
        return Err(invalid(format!(
            "{path}: only base64 data URLs are supported (data:<type>;base64,...)"
        )));
    };
    if media_type.is_empty() {
        return Err(invalid(format!("{path}: data URL has no media type")));
    }
    Ok(Some(DataUrl { media_type, data }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn data_urls() {
        let d = parse_data_url("data:image/png;base64,AAAA", "p")
            .unwrap()
            .unwrap();
        assert_eq!(d.media_type, "image/png");
        assert_eq!(d.data, "AAAA");
        assert!(parse_data_url("https://x/y.png", "p").unwrap().is_none());
        let e = parse_data_url("data:text/plain,hello", "img")
            .err()
            .unwrap();
        assert!(e.to_string().starts_with("img: only base64"), "{e}");
        assert!(parse_data_url("data:;base64,AA", "p").is_err());
        assert!(parse_data_url("data:image/png;base64", "p").is_err());
    }

    #[test]
    fn expected_names_the_type() {
        let e = expected("messages[2].content", "a string", &json!(3));
        assert_eq!(
            e.to_string(),
            "messages[2].content: expected a string, got a number"
        );
    }
}
