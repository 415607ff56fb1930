//! A Responses API request as a Chat Completions request: the form every OpenAI-dialect
//! server has (vLLM, TGI, SGLang, hosted OpenAI-compatible APIs) and the one the Anthropic
//! translation already reads, so one conversion serves both.

use serde_json::{Map, Value, json};

use super::super::TranslateError;
use super::super::util::{expected, invalid, kind, req_str};

/// Fields that need responses stored on the server. The gateway keeps none (any backend of
/// the route may answer the next turn), so they are refused rather than silently ignored.
const STORED: [(&str, &str); 3] = [
    (
        "previous_response_id",
        "previous_response_id is not supported: this gateway stores no responses (each turn may be served by another backend); send the whole conversation in 'input'",
    ),
    (
        "conversation",
        "conversation is not supported: this gateway stores no conversations; send the whole conversation in 'input'",
    ),
    (
        "background",
        "background is not supported: this gateway stores no responses to poll; send the request without 'background'",
    ),
];

/// Why a Responses request cannot be served by this gateway at all, whatever the backend:
/// the stored-response features. `None` when it can.
pub fn refused(req: &Value) -> Option<String> {
    for (key, why) in STORED {
        match req.get(key) {
            None | Some(Value::Null) | Some(Value::Bool(false)) => {}
            Some(_) => return Some(why.to_owned()),
        }
    }
    if req.get("store") == Some(&Value::Bool(true)) {
        return Some(
            "store: true is not supported: this gateway stores no responses; omit 'store' or set it to false"
                .to_owned(),
        );
    }
    None
}

/// The Chat Completions body for a Responses request `req`, with the backend's `model`.
/// Everything the Responses API has that Chat Completions cannot express (hosted tools,
/// item references) is an `Invalid` error naming the field.
pub fn to_chat(req: &Value, model: &str) -> Result<Value, TranslateError> {
    let obj = req
        .as_object()
        .ok_or_else(|| invalid("the request body must be a JSON object"))?;
    if let Some(why) = refused(req) {
        return Err(invalid(why));
    }
    let mut messages = Vec::new();
    match obj.get("instructions") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => messages.push(json!({"role": "system", "content": s})),
        Some(other) => return Err(expected("instructions", "a string", other)),
    }
    match obj.get("input") {
        Some(Value::String(s)) => messages.push(json!({"role": "user", "content": s})),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                push_item(&mut messages, item, &format!("input[{i}]"))?;
            }
        }
        None | Some(Value::Null) => {
            return Err(invalid("input: required field is missing"));
        }
        Some(other) => return Err(expected("input", "a string or an array", other)),
    }
    if messages.is_empty() {
        return Err(invalid("input: must contain at least one item"));
    }
    let mut out = Map::new();
    out.insert("model".into(), Value::String(model.to_owned()));
    out.insert("messages".into(), Value::Array(messages));
    for key in [
        "temperature",
        "top_p",
        "parallel_tool_calls",
        "user",
        "stream",
    ] {
        if let Some(v) = obj.get(key).filter(|v| !v.is_null()) {
            out.insert(key.into(), v.clone());
        }
    }
    if let Some(n) = obj.get("max_output_tokens").filter(|v| !v.is_null()) {
        if n.as_u64().is_none_or(|n| n == 0) {
            return Err(expected("max_output_tokens", "a positive integer", n));
        }
        out.insert("max_completion_tokens".into(), n.clone());
    }
    if let Some(r) = obj.get("reasoning").filter(|v| !v.is_null()) {
        let r = r
            .as_object()
            .ok_or_else(|| expected("reasoning", "an object", r))?;
        if let Some(e) = r.get("effort").filter(|v| !v.is_null()) {
            out.insert("reasoning_effort".into(), e.clone());
        }
    }
    if let Some(tools) = obj.get("tools").filter(|v| !v.is_null()) {
        let tools = tools
            .as_array()
            .ok_or_else(|| expected("tools", "an array", tools))?;
        if !tools.is_empty() {
            let converted = tools
                .iter()
                .enumerate()
                .map(|(i, t)| function_tool(t, &format!("tools[{i}]")))
                .collect::<Result<Vec<_>, _>>()?;
            out.insert("tools".into(), Value::Array(converted));
        }
    }
    if let Some(c) = obj.get("tool_choice").filter(|v| !v.is_null()) {
        out.insert("tool_choice".into(), tool_choice(c)?);
    }
    if let Some(f) = obj.get("text").and_then(|t| t.get("format"))
        && let Some(rf) = response_format(f)?
    {
        out.insert("response_format".into(), rf);
    }
    if out.contains_key("stream") && obj.get("stream") == Some(&Value::Bool(true)) {
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Ok(Value::Object(out))
}

/// Appends the chat messages for one input item. Consecutive function calls become one
/// assistant message with several `tool_calls`, as Chat Completions wants parallel calls.
fn push_item(messages: &mut Vec<Value>, item: &Value, path: &str) -> Result<(), TranslateError> {
    let obj = item
        .as_object()
        .ok_or_else(|| expected(path, "an object", item))?;
    let ty = match obj.get("type") {
        None | Some(Value::Null) => "message",
        Some(Value::String(s)) => s.as_str(),
        Some(other) => return Err(expected(&format!("{path}.type"), "a string", other)),
    };
    match ty {
        "message" => {
            let role = req_str(obj, "role", path)?;
            let role = match role {
                "user" | "assistant" | "system" => role,
                // Chat Completions servers other than OpenAI's know no developer role; a
                // system message is what it means there.
                "developer" => "system",
                other => {
                    return Err(invalid(format!(
                        "{path}.role: expected user, assistant, system or developer, got {other:?}"
                    )));
                }
            };
            let content = message_content(obj.get("content"), role, &format!("{path}.content"))?;
            messages.push(json!({"role": role, "content": content}));
        }
        "function_call" => {
            let call = json!({
                "id": req_str(obj, "call_id", path)?,
                "type": "function",
                "function": {
                    "name": req_str(obj, "name", path)?,
                    "arguments": req_str(obj, "arguments", path)?,
                }
            });
            match messages.last_mut() {
                // An assistant turn's text and the calls that followed it are one chat
                // message; so are parallel calls.
                Some(last) if last["role"] == "assistant" => {
                    let m = last.as_object_mut().expect("messages are objects");
                    let calls = m
                        .entry("tool_calls")
                        .or_insert_with(|| Value::Array(vec![]));
                    if let Value::Array(calls) = calls {
                        calls.push(call);
                    }
                }
                _ => messages
                    .push(json!({"role": "assistant", "content": null, "tool_calls": [call]})),
            }
        }
        "function_call_output" => {
            let id = req_str(obj, "call_id", path)?;
            let output = match obj.get("output") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(parts)) => text_of_parts(parts, &format!("{path}.output"))?,
                Some(other) => {
                    return Err(expected(
                        &format!("{path}.output"),
                        "a string or an array",
                        other,
                    ));
                }
                None => return Err(invalid(format!("{path}.output: required field is missing"))),
            };
            messages.push(json!({"role": "tool", "tool_call_id": id, "content": output}));
        }
        // A reasoning item is the model's own earlier thinking, sent back for context;
        // Chat Completions has no place for it in a request, and models answer without it.
        "reasoning" => {}
        "item_reference" => {
            return Err(invalid(format!(
                "{path}: item_reference needs stored responses, which this gateway does not keep; send the item itself"
            )));
        }
        other => {
            return Err(invalid(format!(
                "{path}.type: {other:?} items are not supported by this backend (it serves Chat Completions); use message, function_call and function_call_output items"
            )));
        }
    }
    Ok(())
}

/// A message's content: a string, or parts (`input_text`, `output_text`, `input_image`).
fn message_content(
    content: Option<&Value>,
    role: &str,
    path: &str,
) -> Result<Value, TranslateError> {
    let parts = match content {
        Some(Value::String(s)) => return Ok(Value::String(s.clone())),
        Some(Value::Array(parts)) => parts,
        Some(other) => return Err(expected(path, "a string or an array", other)),
        None => return Err(invalid(format!("{path}: required field is missing"))),
    };
    // Only user messages take non-text parts in Chat Completions; other roles get the text.
    if role != "user" {
        return Ok(Value::String(text_of_parts(parts, path)?));
    }
    let mut out = Vec::with_capacity(parts.len());
    for (i, p) in parts.iter().enumerate() {
        let path = format!("{path}[{i}]");
        let obj = p
            .as_object()
            .ok_or_else(|| expected(&path, "an object", p))?;
        match obj.get("type").and_then(Value::as_str) {
            Some("input_text" | "output_text" | "text") => {
                out.push(json!({"type": "text", "text": req_str(obj, "text", &path)?}));
            }
            Some("input_image") => {
                let url = match obj.get("image_url") {
                    Some(Value::String(u)) => u.clone(),
                    _ => {
                        return Err(invalid(format!(
                            "{path}: an input_image needs an image_url (file_id needs stored files, which this backend does not have)"
                        )));
                    }
                };
                let mut image = json!({"url": url});
                if let Some(d) = obj.get("detail").filter(|d| d.is_string()) {
                    image["detail"] = d.clone();
                }
                out.push(json!({"type": "image_url", "image_url": image}));
            }
            Some(other) => {
                return Err(invalid(format!(
                    "{path}.type: {other:?} parts are not supported by this backend; use input_text or input_image"
                )));
            }
            None => return Err(invalid(format!("{path}.type: required field is missing"))),
        }
    }
    Ok(Value::Array(out))
}

/// The text of content parts that may only be text.
fn text_of_parts(parts: &[Value], path: &str) -> Result<String, TranslateError> {
    let mut text = String::new();
    for (i, p) in parts.iter().enumerate() {
        let path = format!("{path}[{i}]");
        match p.get("type").and_then(Value::as_str) {
            Some("input_text" | "output_text" | "text") => match p.get("text") {
                Some(Value::String(s)) => text.push_str(s),
                Some(other) => return Err(expected(&format!("{path}.text"), "a string", other)),
                None => return Err(invalid(format!("{path}.text: required field is missing"))),
            },
            Some("refusal") => {
                if let Some(s) = p.get("refusal").and_then(Value::as_str) {
                    text.push_str(s);
                }
            }
            _ => {
                return Err(invalid(format!(
                    "{path}: only text parts are supported here, got {}",
                    p.get("type")
                        .map_or("no type".to_owned(), |t| t.to_string())
                )));
            }
        }
    }
    Ok(text)
}

/// A Responses function tool (flat) as a Chat Completions tool (nested under `function`).
fn function_tool(t: &Value, path: &str) -> Result<Value, TranslateError> {
    let obj = t
        .as_object()
        .ok_or_else(|| expected(path, "an object", t))?;
    match obj.get("type").and_then(Value::as_str) {
        Some("function") => {}
        Some(other) => {
            return Err(invalid(format!(
                "{path}.type: {other:?} tools are hosted by OpenAI and not supported by this backend; only function tools are"
            )));
        }
        None => return Err(invalid(format!("{path}.type: required field is missing"))),
    }
    let mut function = Map::new();
    function.insert(
        "name".into(),
        Value::String(req_str(obj, "name", path)?.to_owned()),
    );
    for key in ["description", "parameters", "strict"] {
        if let Some(v) = obj.get(key).filter(|v| !v.is_null()) {
            function.insert(key.into(), v.clone());
        }
    }
    Ok(json!({"type": "function", "function": function}))
}

fn tool_choice(c: &Value) -> Result<Value, TranslateError> {
    match c {
        Value::String(s) if matches!(s.as_str(), "auto" | "none" | "required") => Ok(c.clone()),
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => Ok(
            json!({"type": "function", "function": {"name": req_str(o, "name", "tool_choice")?}}),
        ),
        other => Err(invalid(format!(
            "tool_choice: expected auto, none, required or {{\"type\": \"function\", \"name\": ...}}, got {}",
            match other {
                Value::String(s) => format!("{s:?}"),
                v => kind(v).to_owned(),
            }
        ))),
    }
}

/// `text.format` as `response_format`; `None` for plain text.
fn response_format(f: &Value) -> Result<Option<Value>, TranslateError> {
    let obj = f
        .as_object()
        .ok_or_else(|| expected("text.format", "an object", f))?;
    match obj.get("type").and_then(Value::as_str) {
        Some("text") | None => Ok(None),
        Some("json_object") => Ok(Some(json!({"type": "json_object"}))),
        Some("json_schema") => {
            let mut schema = Map::new();
            schema.insert(
                "name".into(),
                Value::String(req_str(obj, "name", "text.format")?.to_owned()),
            );
            for key in ["schema", "strict", "description"] {
                if let Some(v) = obj.get(key).filter(|v| !v.is_null()) {
                    schema.insert(key.into(), v.clone());
                }
            }
            Ok(Some(json!({"type": "json_schema", "json_schema": schema})))
        }
        Some(other) => Err(invalid(format!(
            "text.format.type: expected text, json_object or json_schema, got {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_input_and_instructions_become_system_and_user_messages() {
        let chat = to_chat(
            &json!({"model": "chat", "instructions": "Be brief.", "input": "Hi", "max_output_tokens": 50,
                    "reasoning": {"effort": "low"}, "temperature": 0.2}),
            "gpt-4o",
        )
        .unwrap();
        assert_eq!(
            chat,
            json!({"model": "gpt-4o", "messages": [
                {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
                "max_completion_tokens": 50, "reasoning_effort": "low", "temperature": 0.2})
        );
    }

    #[test]
    fn a_tool_round_trip_becomes_assistant_tool_calls_and_tool_messages() {
        let chat = to_chat(
            &json!({"model": "chat", "stream": true, "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "Weather in Paris and Rome?"}]},
                {"type": "function_call", "call_id": "c1", "name": "weather", "arguments": "{\"city\":\"Paris\"}"},
                {"type": "function_call", "call_id": "c2", "name": "weather", "arguments": "{\"city\":\"Rome\"}"},
                {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
                {"type": "function_call_output", "call_id": "c2", "output": "rain"}],
                "tools": [{"type": "function", "name": "weather", "parameters": {"type": "object"}, "strict": true}],
                "tool_choice": {"type": "function", "name": "weather"},
                "text": {"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}, "strict": true}}}),
            "m",
        )
        .unwrap();
        assert_eq!(
            chat["messages"][0]["content"],
            json!([{"type": "text", "text": "Weather in Paris and Rome?"}])
        );
        let calls = &chat["messages"][1]["tool_calls"];
        assert_eq!(
            calls.as_array().unwrap().len(),
            2,
            "parallel calls are one assistant message"
        );
        assert_eq!(calls[1]["function"]["arguments"], "{\"city\":\"Rome\"}");
        assert_eq!(
            chat["messages"][2],
            json!({"role": "tool", "tool_call_id": "c1", "content": "sunny"})
        );
        assert_eq!(
            chat["tools"][0],
            json!({"type": "function", "function": {
            "name": "weather", "parameters": {"type": "object"}, "strict": true}})
        );
        assert_eq!(
            chat["tool_choice"],
            json!({"type": "function", "function": {"name": "weather"}})
        );
        assert_eq!(chat["response_format"]["json_schema"]["name"], "w");
        assert_eq!(chat["stream_options"], json!({"include_usage": true}));
    }

    #[test]
    fn stored_response_features_and_hosted_tools_are_refused_with_what_to_do() {
        let err = |v: Value| to_chat(&v, "m").unwrap_err().to_string();
        assert!(
            err(json!({"input": "x", "previous_response_id": "resp_1"}))
                .contains("send the whole conversation in 'input'")
        );
        assert!(err(json!({"input": "x", "store": true})).contains("set it to false"));
        assert!(to_chat(&json!({"input": "x", "store": false}), "m").is_ok());
        assert!(
            err(json!({"input": "x", "tools": [{"type": "web_search"}]}))
                .contains("tools[0].type: \"web_search\" tools are hosted by OpenAI")
        );
        assert!(
            err(json!({"input": [{"type": "item_reference", "id": "msg_1"}]})).contains("input[0]")
        );
        assert!(
            err(json!({"input": 3})).contains("input: expected a string or an array, got a number")
        );
        assert!(err(json!({"model": "m"})).contains("input: required field is missing"));
    }
}
