//! Anthropic Messages request -> OpenAI Chat Completions request.

use serde_json::{Map, Value, json};

use super::super::util::{expected, invalid, present, req_str};
use super::super::{TranslateError, reasoning, structured};
use super::{empty_schema, positive_int};

/// Translates an Anthropic Messages request into an OpenAI Chat Completions request for
/// `model`.
///
/// `tool_result` blocks become `role: tool` messages placed before the rest of the user turn
/// (OpenAI requires tool results to follow the assistant's tool calls directly). Images inside
/// a tool result cannot be put in a tool message, so they move to the user message that follows.
/// When streaming, `stream_options.include_usage` is set so the stream reports usage.
pub fn anthropic_to_openai(req: &Value, model: &str) -> Result<Value, TranslateError> {
    let obj = req
        .as_object()
        .ok_or_else(|| expected("request body", "a JSON object", req))?;
    let mut out = Map::new();
    out.insert("model".into(), Value::String(model.to_owned()));

    let mut messages = Vec::new();
    if let Some(system) = present(obj, "system") {
        let text = anthropic_text(system, "system")?;
        if !text.is_empty() {
            messages.push(json!({"role": "system", "content": text}));
        }
    }
    let raw_messages = match obj.get("messages") {
        Some(Value::Array(a)) => a,
        Some(other) => return Err(expected("messages", "an array", other)),
        None => return Err(invalid("messages: required field is missing")),
    };
    for (i, m) in raw_messages.iter().enumerate() {
        let path = format!("messages[{i}]");
        let m = m
            .as_object()
            .ok_or_else(|| expected(&path, "a message object", m))?;
        let role = req_str(m, "role", &path)?;
        let content_path = format!("{path}.content");
        let content = m
            .get("content")
            .ok_or_else(|| invalid(format!("{content_path}: required field is missing")))?;
        match role {
            "user" => messages.extend(openai_user_messages(content, &content_path)?),
            "assistant" => messages.push(openai_assistant_message(content, &content_path)?),
            other => {
                return Err(invalid(format!(
                    "{path}.role: expected \"user\" or \"assistant\", got {other:?}"
                )));
            }
        }
    }
    out.insert("messages".into(), Value::Array(messages));

    // `max_completion_tokens`, never `max_tokens`: OpenAI's reasoning models refuse
    // `max_tokens`, and vLLM and SGLang take both (`max_tokens` is deprecated there).
    if let Some(v) = present(obj, "max_tokens") {
        out.insert(
            "max_completion_tokens".into(),
            positive_int(v, "max_tokens")?.into(),
        );
    }
    if let Some(effort) = reasoning::effort_for_thinking(obj)? {
        out.insert("reasoning_effort".into(), Value::String(effort.into()));
    }
    if let Some(rf) = structured::response_format(obj)? {
        out.insert("response_format".into(), rf);
    }
    if let Some(s) = present(obj, "stop_sequences") {
        let a = s
            .as_array()
            .ok_or_else(|| expected("stop_sequences", "an array of strings", s))?;
        for (j, s) in a.iter().enumerate() {
            if !s.is_string() {
                return Err(expected(&format!("stop_sequences[{j}]"), "a string", s));
            }
        }
        if !a.is_empty() {
            out.insert("stop".into(), s.clone());
        }
    }
    for key in ["temperature", "top_p"] {
        if let Some(v) = present(obj, key) {
            if !v.is_number() {
                return Err(expected(key, "a number", v));
            }
            out.insert(key.into(), v.clone());
        }
    }
    if let Some(s) = present(obj, "stream") {
        let s = s
            .as_bool()
            .ok_or_else(|| expected("stream", "a boolean", s))?;
        out.insert("stream".into(), Value::Bool(s));
        if s {
            out.insert("stream_options".into(), json!({"include_usage": true}));
        }
    }
    if let Some(user) = obj
        .get("metadata")
        .and_then(|m| m.get("user_id"))
        .and_then(Value::as_str)
    {
        out.insert("user".into(), Value::String(user.to_owned()));
    }

    if let Some(t) = present(obj, "tools") {
        let t = t
            .as_array()
            .ok_or_else(|| expected("tools", "an array", t))?;
        let mut tools = Vec::with_capacity(t.len());
        for (j, tool) in t.iter().enumerate() {
            let path = format!("tools[{j}]");
            let tool = tool
                .as_object()
                .ok_or_else(|| expected(&path, "a tool object", tool))?;
            if let Some(ty) = tool.get("type").and_then(Value::as_str)
                && ty != "custom"
            {
                return Err(invalid(format!(
                    "{path}.type: Anthropic server tool {ty:?} has no equivalent on this model's backend"
                )));
            }
            let name = req_str(tool, "name", &path)?;
            let mut f = Map::new();
            f.insert("name".into(), Value::String(name.to_owned()));
            if let Some(d) = present(tool, "description") {
                f.insert("description".into(), d.clone());
            }
            let params = present(tool, "input_schema")
                .cloned()
                .unwrap_or_else(empty_schema);
            f.insert("parameters".into(), params);
            tools.push(json!({"type": "function", "function": f}));
        }
        if !tools.is_empty() {
            out.insert("tools".into(), Value::Array(tools));
        }
    }
    if let Some(c) = present(obj, "tool_choice") {
        let c = c
            .as_object()
            .ok_or_else(|| expected("tool_choice", "an object", c))?;
        let choice = match req_str(c, "type", "tool_choice")? {
            "auto" => json!("auto"),
            "any" => json!("required"),
            "none" => json!("none"),
            "tool" => {
                let name = req_str(c, "name", "tool_choice")?;
                json!({"type": "function", "function": {"name": name}})
            }
            other => {
                return Err(invalid(format!(
                    "tool_choice.type: expected auto, any, tool or none, got {other:?}"
                )));
            }
        };
        out.insert("tool_choice".into(), choice);
        if c.get("disable_parallel_tool_use") == Some(&Value::Bool(true))
            && out.contains_key("tools")
        {
            out.insert("parallel_tool_calls".into(), Value::Bool(false));
        }
    }
    Ok(Value::Object(out))
}
/// Text of an Anthropic `system` prompt or tool result: a string or an array of text blocks.
fn anthropic_text(v: &Value, path: &str) -> Result<String, TranslateError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Array(blocks) => {
            let mut texts = Vec::with_capacity(blocks.len());
            for (j, b) in blocks.iter().enumerate() {
                let bpath = format!("{path}[{j}]");
                let b = b
                    .as_object()
                    .ok_or_else(|| expected(&bpath, "a content block object", b))?;
                match req_str(b, "type", &bpath)? {
                    "text" => texts.push(req_str(b, "text", &bpath)?.to_owned()),
                    other => {
                        return Err(invalid(format!(
                            "{bpath}.type: only text blocks are allowed here, got {other:?}"
                        )));
                    }
                }
            }
            Ok(texts.join("\n\n"))
        }
        other => Err(expected(path, "a string or an array of text blocks", other)),
    }
}

fn content_blocks<'a>(
    content: &'a Value,
    path: &str,
) -> Result<Vec<&'a Map<String, Value>>, TranslateError> {
    match content {
        Value::Array(blocks) => blocks
            .iter()
            .enumerate()
            .map(|(j, b)| {
                b.as_object()
                    .ok_or_else(|| expected(&format!("{path}[{j}]"), "a content block object", b))
            })
            .collect(),
        other => Err(expected(
            path,
            "a string or an array of content blocks",
            other,
        )),
    }
}

/// An OpenAI image part for an Anthropic image block.
fn openai_image(b: &Map<String, Value>, path: &str) -> Result<Value, TranslateError> {
    let spath = format!("{path}.source");
    let source = match b.get("source") {
        Some(Value::Object(s)) => s,
        Some(other) => return Err(expected(&spath, "an object", other)),
        None => return Err(invalid(format!("{spath}: required field is missing"))),
    };
    let url = match req_str(source, "type", &spath)? {
        "base64" => format!(
            "data:{};base64,{}",
            req_str(source, "media_type", &spath)?,
            req_str(source, "data", &spath)?
        ),
        "url" => req_str(source, "url", &spath)?.to_owned(),
        other => {
            return Err(invalid(format!(
                "{spath}.type: image source {other:?} cannot be translated (supported: base64, url)"
            )));
        }
    };
    Ok(json!({"type": "image_url", "image_url": {"url": url}}))
}

/// An OpenAI content part for an Anthropic `document` block: PDFs as inline files, plain-text
/// documents as text.
fn openai_document(b: &Map<String, Value>, path: &str) -> Result<Value, TranslateError> {
    let spath = format!("{path}.source");
    let source = match b.get("source") {
        Some(Value::Object(s)) => s,
        Some(other) => return Err(expected(&spath, "an object", other)),
        None => return Err(invalid(format!("{spath}: required field is missing"))),
    };
    match req_str(source, "type", &spath)? {
        "base64" => {
            let media = req_str(source, "media_type", &spath)?;
            let data = req_str(source, "data", &spath)?;
            let filename = b
                .get("title")
                .and_then(Value::as_str)
                .unwrap_or("document.pdf");
            Ok(json!({
                "type": "file",
                "file": {"filename": filename, "file_data": format!("data:{media};base64,{data}")}
            }))
        }
        "text" => Ok(json!({"type": "text", "text": req_str(source, "data", &spath)?})),
        other => Err(invalid(format!(
            "{spath}.type: document source {other:?} cannot be translated (supported: base64, text)"
        ))),
    }
}

/// OpenAI content for a list of parts: a plain string when every part is text.
fn openai_content(parts: Vec<Value>) -> Value {
    if parts.iter().all(|p| p["type"] == "text") {
        let texts: Vec<&str> = parts.iter().filter_map(|p| p["text"].as_str()).collect();
        Value::String(texts.join("\n\n"))
    } else {
        Value::Array(parts)
    }
}

/// OpenAI messages for one Anthropic user message: a `tool` message per `tool_result`, then a
/// user message with the remaining content (if any).
fn openai_user_messages(content: &Value, path: &str) -> Result<Vec<Value>, TranslateError> {
    if let Value::String(s) = content {
        return Ok(vec![json!({"role": "user", "content": s})]);
    }
    let mut tool_messages = Vec::new();
    let mut parts = Vec::new();
    let mut tool_images = Vec::new();
    for (j, b) in content_blocks(content, path)?.into_iter().enumerate() {
        let bpath = format!("{path}[{j}]");
        match req_str(b, "type", &bpath)? {
            "text" => parts.push(json!({"type": "text", "text": req_str(b, "text", &bpath)?})),
            "image" => parts.push(openai_image(b, &bpath)?),
            "document" => parts.push(openai_document(b, &bpath)?),
            "tool_result" => {
                let id = req_str(b, "tool_use_id", &bpath)?;
                let mut text = String::new();
                match present(b, "content") {
                    None => {}
                    Some(Value::String(s)) => text.push_str(s),
                    Some(inner) => {
                        let cpath = format!("{bpath}.content");
                        let mut texts = Vec::new();
                        for (k, ib) in content_blocks(inner, &cpath)?.into_iter().enumerate() {
                            let ipath = format!("{cpath}[{k}]");
                            match req_str(ib, "type", &ipath)? {
                                "text" => texts.push(req_str(ib, "text", &ipath)?),
                                "image" => tool_images.push(openai_image(ib, &ipath)?),
                                other => {
                                    return Err(invalid(format!(
                                        "{ipath}.type: tool result block type {other:?} cannot be translated (supported: text, image)"
                                    )));
                                }
                            }
                        }
                        text = texts.join("\n\n");
                    }
                }
                if b.get("is_error") == Some(&Value::Bool(true)) {
                    text = format!("Error: {text}");
                }
                tool_messages.push(json!({"role": "tool", "tool_call_id": id, "content": text}));
            }
            other => {
                return Err(invalid(format!(
                    "{bpath}.type: content block type {other:?} cannot be translated (supported in user messages: text, image, document, tool_result)"
                )));
            }
        }
    }
    // Images returned by tools go first in the following user turn, next to the results.
    tool_images.extend(parts);
    let parts = tool_images;
    let mut out = tool_messages;
    if !parts.is_empty() {
        out.push(json!({"role": "user", "content": openai_content(parts)}));
    } else if out.is_empty() {
        // An empty user turn stays a (empty) user turn rather than vanishing.
        out.push(json!({"role": "user", "content": ""}));
    }
    Ok(out)
}

/// The OpenAI assistant message for an Anthropic assistant message: text as `content` (null
/// when there are only tool calls), `tool_use` blocks as `tool_calls`. Thinking blocks have no
/// request-side equivalent and are dropped.
fn openai_assistant_message(content: &Value, path: &str) -> Result<Value, TranslateError> {
    if let Value::String(s) = content {
        return Ok(json!({"role": "assistant", "content": s}));
    }
    let mut texts: Vec<&str> = Vec::new();
    let mut calls = Vec::new();
    for (j, b) in content_blocks(content, path)?.into_iter().enumerate() {
        let bpath = format!("{path}[{j}]");
        match req_str(b, "type", &bpath)? {
            "text" => texts.push(req_str(b, "text", &bpath)?),
            "tool_use" => {
                let id = req_str(b, "id", &bpath)?;
                let name = req_str(b, "name", &bpath)?;
                let input = present(b, "input").cloned().unwrap_or_else(|| json!({}));
                calls.push(json!({
                    "id": id,
                    "type": "function",
                    "function": {"name": name, "arguments": input.to_string()}
                }));
            }
            "thinking" | "redacted_thinking" => {}
            other => {
                return Err(invalid(format!(
                    "{bpath}.type: content block type {other:?} cannot be translated (supported in assistant messages: text, tool_use, thinking)"
                )));
            }
        }
    }
    let mut msg = Map::new();
    msg.insert("role".into(), json!("assistant"));
    let content = if texts.is_empty() && !calls.is_empty() {
        Value::Null
    } else {
        Value::String(texts.concat())
    };
    msg.insert("content".into(), content);
    if !calls.is_empty() {
        msg.insert("tool_calls".into(), Value::Array(calls));
    }
    Ok(Value::Object(msg))
}
