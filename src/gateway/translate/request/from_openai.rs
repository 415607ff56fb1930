//! OpenAI Chat Completions request -> Anthropic Messages request.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::super::util::{expected, invalid, parse_data_url, present, req_str};
use super::super::{TranslateError, reasoning, structured};
use super::{DEFAULT_MAX_TOKENS, empty_schema, positive_int};

/// Translates an OpenAI Chat Completions request into an Anthropic Messages request for
/// `model`.
///
/// `system` and `developer` messages become the top-level `system` prompt (joined by a blank
/// line); consecutive messages of the same role are merged because Anthropic requires roles to
/// alternate; `role: tool` results become `tool_result` blocks in a user message.
///
/// `response_format` of type `json_object` or `json_schema` becomes a tool the model must
/// call (see `structured`); `reasoning_effort` becomes a `thinking` budget (see `reasoning`).
pub fn openai_to_anthropic(req: &Value, model: &str) -> Result<Value, TranslateError> {
    let obj = req
        .as_object()
        .ok_or_else(|| expected("request body", "a JSON object", req))?;
    if let Some(n) = present(obj, "n")
        && n.as_u64() != Some(1)
    {
        return Err(invalid(format!(
            "n: only one choice per request is supported by this model's backend (got {n})"
        )));
    }

    let mut out = Map::new();
    out.insert("model".into(), Value::String(model.to_owned()));

    let raw_messages = match obj.get("messages") {
        Some(Value::Array(a)) => a,
        Some(other) => return Err(expected("messages", "an array", other)),
        None => return Err(invalid("messages: required field is missing")),
    };
    let mut system: Vec<String> = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    // Legacy `function_call`s carry no id; results (`role: function`) refer to them by name.
    let mut legacy_ids: HashMap<String, String> = HashMap::new();
    for (i, m) in raw_messages.iter().enumerate() {
        let path = format!("messages[{i}]");
        let m = m
            .as_object()
            .ok_or_else(|| expected(&path, "a message object", m))?;
        let role = req_str(m, "role", &path)?;
        let content_path = format!("{path}.content");
        match role {
            "system" | "developer" => {
                let text = openai_text_content(m.get("content"), &content_path)?;
                if !text.is_empty() {
                    system.push(text);
                }
            }
            "user" => {
                let content = m
                    .get("content")
                    .ok_or_else(|| invalid(format!("{content_path}: required field is missing")))?;
                turns.push(("user", openai_user_blocks(content, &content_path)?));
            }
            "assistant" => {
                let blocks = openai_assistant_blocks(m, &path, i, &mut legacy_ids)?;
                if !blocks.is_empty() {
                    turns.push(("assistant", blocks));
                }
            }
            "tool" => {
                let id = req_str(m, "tool_call_id", &path)?;
                let text = openai_text_content(m.get("content"), &content_path)?;
                turns.push(("user", vec![tool_result(id, text)]));
            }
            "function" => {
                let name = req_str(m, "name", &path)?;
                let id = legacy_ids.get(name).cloned().ok_or_else(|| {
                    invalid(format!(
                        "{path}: function result for {name:?} does not follow an assistant function_call"
                    ))
                })?;
                let text = openai_text_content(m.get("content"), &content_path)?;
                turns.push(("user", vec![tool_result(&id, text)]));
            }
            other => {
                return Err(invalid(format!(
                    "{path}.role: unknown role {other:?} (expected system, developer, user, assistant or tool)"
                )));
            }
        }
    }
    let messages = merge_turns(turns);
    if messages.is_empty() {
        return Err(invalid(
            "messages: at least one user or assistant message with content is required",
        ));
    }

    out.insert("messages".into(), Value::Array(messages));

    let max = match (
        present(obj, "max_completion_tokens"),
        present(obj, "max_tokens"),
    ) {
        (Some(v), _) => positive_int(v, "max_completion_tokens")?,
        (None, Some(v)) => positive_int(v, "max_tokens")?,
        (None, None) => DEFAULT_MAX_TOKENS,
    };
    out.insert("max_tokens".into(), max.into());

    if let Some(stop) = present(obj, "stop") {
        let seqs = match stop {
            Value::String(s) => vec![Value::String(s.clone())],
            Value::Array(a) => {
                for (j, s) in a.iter().enumerate() {
                    if !s.is_string() {
                        return Err(expected(&format!("stop[{j}]"), "a string", s));
                    }
                }
                a.clone()
            }
            other => return Err(expected("stop", "a string or an array of strings", other)),
        };
        if !seqs.is_empty() {
            out.insert("stop_sequences".into(), Value::Array(seqs));
        }
    }
    if let Some(t) = present(obj, "temperature") {
        let t = t
            .as_f64()
            .ok_or_else(|| expected("temperature", "a number", t))?;
        // OpenAI accepts 0..=2, Anthropic 0..=1.
        out.insert("temperature".into(), json!(t.clamp(0.0, 1.0)));
    }
    if let Some(p) = present(obj, "top_p") {
        if !p.is_number() {
            return Err(expected("top_p", "a number", p));
        }
        out.insert("top_p".into(), p.clone());
    }
    if let Some(s) = present(obj, "stream") {
        let s = s
            .as_bool()
            .ok_or_else(|| expected("stream", "a boolean", s))?;
        out.insert("stream".into(), Value::Bool(s));
    }
    if let Some(u) = present(obj, "user") {
        let u = u.as_str().ok_or_else(|| expected("user", "a string", u))?;
        out.insert("metadata".into(), json!({"user_id": u}));
    }

    let mut tools = Vec::new();
    if let Some(t) = present(obj, "tools") {
        let t = t
            .as_array()
            .ok_or_else(|| expected("tools", "an array", t))?;
        for (j, tool) in t.iter().enumerate() {
            let path = format!("tools[{j}]");
            let tool = tool
                .as_object()
                .ok_or_else(|| expected(&path, "a tool object", tool))?;
            let ty = tool
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("function");
            if ty != "function" {
                return Err(invalid(format!(
                    "{path}.type: only function tools can be translated (got {ty:?})"
                )));
            }
            let f = match tool.get("function") {
                Some(Value::Object(f)) => f,
                Some(other) => {
                    return Err(expected(&format!("{path}.function"), "an object", other));
                }
                None => {
                    return Err(invalid(format!(
                        "{path}.function: required field is missing"
                    )));
                }
            };
            tools.push(anthropic_tool(f, &format!("{path}.function"))?);
        }
    }
    if let Some(f) = present(obj, "functions") {
        let f = f
            .as_array()
            .ok_or_else(|| expected("functions", "an array", f))?;
        for (j, func) in f.iter().enumerate() {
            let path = format!("functions[{j}]");
            let func = func
                .as_object()
                .ok_or_else(|| expected(&path, "a function object", func))?;
            tools.push(anthropic_tool(func, &path)?);
        }
    }
    let choice = match (present(obj, "tool_choice"), present(obj, "function_call")) {
        (Some(c), _) => Some(anthropic_tool_choice(c, "tool_choice")?),
        (None, Some(c)) => Some(anthropic_tool_choice(c, "function_call")?),
        (None, None) => None,
    };
    let thinking = reasoning::apply_effort(obj, &mut out)?;
    let choice = structured::add_answer_tool(obj, &mut tools, choice, thinking, &mut system)?;
    if !system.is_empty() {
        out.insert("system".into(), Value::String(system.join("\n\n")));
    }
    let serial = matches!(
        present(obj, "parallel_tool_calls"),
        Some(Value::Bool(false))
    );
    // Anthropic rejects `tool_choice` without `tools`; without tools there is nothing to choose.
    if !tools.is_empty() {
        out.insert("tools".into(), Value::Array(tools));
        // `parallel_tool_calls: false` lives on Anthropic's tool_choice, so it needs one.
        let choice = choice.or_else(|| serial.then(|| json!({"type": "auto"})));
        if let Some(mut choice) = choice {
            if serial
                && choice["type"] != "none"
                && let Some(c) = choice.as_object_mut()
            {
                c.insert("disable_parallel_tool_use".into(), Value::Bool(true));
            }
            out.insert("tool_choice".into(), choice);
        }
    }
    Ok(Value::Object(out))
}
/// Text of an OpenAI message whose content must be text: a string, an array of `text` parts
/// (joined by a blank line), or null/absent (empty).
fn openai_text_content(content: Option<&Value>, path: &str) -> Result<String, TranslateError> {
    match content {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => {
            let mut texts = Vec::with_capacity(parts.len());
            for (j, part) in parts.iter().enumerate() {
                let ppath = format!("{path}[{j}]");
                let part = part
                    .as_object()
                    .ok_or_else(|| expected(&ppath, "a content part object", part))?;
                match part.get("type").and_then(Value::as_str) {
                    Some("text") => texts.push(req_str(part, "text", &ppath)?.to_owned()),
                    Some(other) => {
                        return Err(invalid(format!(
                            "{ppath}.type: only text parts are allowed here, got {other:?}"
                        )));
                    }
                    None => {
                        return Err(invalid(format!("{ppath}.type: required field is missing")));
                    }
                }
            }
            Ok(texts.join("\n\n"))
        }
        Some(other) => Err(expected(
            path,
            "a string or an array of text content parts",
            other,
        )),
    }
}

/// Anthropic content blocks for an OpenAI user message.
fn openai_user_blocks(content: &Value, path: &str) -> Result<Vec<Value>, TranslateError> {
    let parts = match content {
        Value::String(s) => return Ok(text_block(s).into_iter().collect()),
        Value::Array(parts) => parts,
        other => {
            return Err(expected(
                path,
                "a string or an array of content parts",
                other,
            ));
        }
    };
    let mut blocks = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let ppath = format!("{path}[{j}]");
        let part = part
            .as_object()
            .ok_or_else(|| expected(&ppath, "a content part object", part))?;
        match req_str(part, "type", &ppath)? {
            "text" => blocks.extend(text_block(req_str(part, "text", &ppath)?)),
            "image_url" => {
                let ipath = format!("{ppath}.image_url");
                let url = match part.get("image_url") {
                    Some(Value::String(u)) => u.as_str(),
                    Some(Value::Object(o)) => req_str(o, "url", &ipath)?,
                    Some(other) => return Err(expected(&ipath, "an object with a url", other)),
                    None => return Err(invalid(format!("{ipath}: required field is missing"))),
                };
                blocks.push(anthropic_image(url, &format!("{ipath}.url"))?);
            }
            "file" => {
                let fpath = format!("{ppath}.file");
                let file = match part.get("file") {
                    Some(Value::Object(o)) => o,
                    Some(other) => return Err(expected(&fpath, "an object", other)),
                    None => return Err(invalid(format!("{fpath}: required field is missing"))),
                };
                let data = match present(file, "file_data") {
                    Some(Value::String(d)) => d,
                    _ => {
                        return Err(invalid(format!(
                            "{fpath}: only inline file_data (a base64 data URL) can be translated; uploaded file ids cannot"
                        )));
                    }
                };
                let Some(d) = parse_data_url(data, &format!("{fpath}.file_data"))? else {
                    return Err(invalid(format!(
                        "{fpath}.file_data: expected a base64 data URL"
                    )));
                };
                if d.media_type != "application/pdf" {
                    return Err(invalid(format!(
                        "{fpath}.file_data: only PDF files can be translated, got {:?}",
                        d.media_type
                    )));
                }
                blocks.push(json!({
                    "type": "document",
                    "source": {"type": "base64", "media_type": d.media_type, "data": d.data}
                }));
            }
            other => {
                return Err(invalid(format!(
                    "{ppath}.type: content part type {other:?} cannot be translated (supported: text, image_url, file)"
                )));
            }
        }
    }
    Ok(blocks)
}

/// A `tool_result` block; empty output omits `content` (which Anthropic treats as optional)
/// rather than sending an empty string.
fn tool_result(id: &str, text: String) -> Value {
    if text.is_empty() {
        json!({"type": "tool_result", "tool_use_id": id})
    } else {
        json!({"type": "tool_result", "tool_use_id": id, "content": text})
    }
}

/// Anthropic rejects empty text blocks, so empty strings produce none.
fn text_block(text: &str) -> Option<Value> {
    (!text.is_empty()).then(|| json!({"type": "text", "text": text}))
}

fn anthropic_image(url: &str, path: &str) -> Result<Value, TranslateError> {
    if let Some(d) = parse_data_url(url, path)? {
        return Ok(json!({
            "type": "image",
            "source": {"type": "base64", "media_type": d.media_type, "data": d.data}
        }));
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(json!({"type": "image", "source": {"type": "url", "url": url}}));
    }
    Err(invalid(format!(
        "{path}: expected an http(s) URL or a base64 data URL"
    )))
}

/// Anthropic content blocks for an OpenAI assistant message: its text, then one `tool_use`
/// block per tool call (or legacy `function_call`).
fn openai_assistant_blocks(
    m: &Map<String, Value>,
    path: &str,
    index: usize,
    legacy_ids: &mut HashMap<String, String>,
) -> Result<Vec<Value>, TranslateError> {
    let content_path = format!("{path}.content");
    // Anthropic wants a turn's thinking first, before its text and tool calls.
    let mut blocks = reasoning::request_thinking_blocks(m, path)?;
    match m.get("content") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => blocks.extend(text_block(s)),
        Some(Value::Array(parts)) => {
            for (j, part) in parts.iter().enumerate() {
                let ppath = format!("{content_path}[{j}]");
                let part = part
                    .as_object()
                    .ok_or_else(|| expected(&ppath, "a content part object", part))?;
                match req_str(part, "type", &ppath)? {
                    "text" => blocks.extend(text_block(req_str(part, "text", &ppath)?)),
                    "refusal" => blocks.extend(text_block(req_str(part, "refusal", &ppath)?)),
                    other => {
                        return Err(invalid(format!(
                            "{ppath}.type: assistant content part type {other:?} cannot be translated (supported: text, refusal)"
                        )));
                    }
                }
            }
        }
        Some(other) => {
            return Err(expected(
                &content_path,
                "a string, null or an array of content parts",
                other,
            ));
        }
    }
    if let Some(calls) = present(m, "tool_calls") {
        let tpath = format!("{path}.tool_calls");
        let calls = calls
            .as_array()
            .ok_or_else(|| expected(&tpath, "an array", calls))?;
        for (j, call) in calls.iter().enumerate() {
            let cpath = format!("{tpath}[{j}]");
            let call = call
                .as_object()
                .ok_or_else(|| expected(&cpath, "a tool call object", call))?;
            let id = req_str(call, "id", &cpath)?;
            let fpath = format!("{cpath}.function");
            let f = match call.get("function") {
                Some(Value::Object(f)) => f,
                Some(other) => return Err(expected(&fpath, "an object", other)),
                None => return Err(invalid(format!("{fpath}: required field is missing"))),
            };
            blocks.push(tool_use_block(id, f, &fpath)?);
        }
    }
    if let Some(fc) = present(m, "function_call") {
        let fpath = format!("{path}.function_call");
        let f = fc
            .as_object()
            .ok_or_else(|| expected(&fpath, "an object", fc))?;
        let id = format!("toolu_legacy_{index}");
        let block = tool_use_block(&id, f, &fpath)?;
        if let Some(name) = f.get("name").and_then(Value::as_str) {
            legacy_ids.insert(name.to_owned(), id);
        }
        blocks.push(block);
    }
    Ok(blocks)
}

fn tool_use_block(id: &str, f: &Map<String, Value>, path: &str) -> Result<Value, TranslateError> {
    let name = req_str(f, "name", path)?;
    let input = match present(f, "arguments") {
        None => json!({}),
        Some(Value::String(s)) if s.trim().is_empty() => json!({}),
        Some(Value::String(s)) => serde_json::from_str::<Value>(s)
            .map_err(|e| invalid(format!("{path}.arguments: not valid JSON ({e})")))?,
        Some(other) => {
            return Err(expected(
                &format!("{path}.arguments"),
                "a JSON string",
                other,
            ));
        }
    };
    if !input.is_object() {
        return Err(invalid(format!(
            "{path}.arguments: expected a JSON object, got {}",
            super::super::util::kind(&input)
        )));
    }
    Ok(json!({"type": "tool_use", "id": id, "name": name, "input": input}))
}

fn anthropic_tool(f: &Map<String, Value>, path: &str) -> Result<Value, TranslateError> {
    let name = req_str(f, "name", path)?;
    let mut tool = Map::new();
    tool.insert("name".into(), Value::String(name.to_owned()));
    if let Some(d) = present(f, "description") {
        tool.insert("description".into(), d.clone());
    }
    let schema = present(f, "parameters")
        .cloned()
        .unwrap_or_else(empty_schema);
    tool.insert("input_schema".into(), schema);
    Ok(Value::Object(tool))
}

fn anthropic_tool_choice(c: &Value, path: &str) -> Result<Value, TranslateError> {
    match c {
        Value::String(s) => match s.as_str() {
            "auto" => Ok(json!({"type": "auto"})),
            "required" => Ok(json!({"type": "any"})),
            "none" => Ok(json!({"type": "none"})),
            other => Err(invalid(format!(
                "{path}: expected \"auto\", \"required\", \"none\" or a function, got {other:?}"
            ))),
        },
        Value::Object(o) => {
            // `{"type":"function","function":{"name":..}}`, or legacy `function_call: {"name":..}`.
            let name = match o.get("function") {
                Some(Value::Object(f)) => req_str(f, "name", &format!("{path}.function"))?,
                _ => req_str(o, "name", path)?,
            };
            Ok(json!({"type": "tool", "name": name}))
        }
        other => Err(expected(path, "a string or an object", other)),
    }
}

/// Merges consecutive same-role turns into Anthropic messages. Within a user message the
/// `tool_result` blocks go first, as Anthropic requires.
fn merge_turns(turns: Vec<(&'static str, Vec<Value>)>) -> Vec<Value> {
    let mut merged: Vec<(&'static str, Vec<Value>)> = Vec::new();
    // A turn without content (an empty string) is dropped: Anthropic rejects empty messages.
    for (role, blocks) in turns.into_iter().filter(|(_, b)| !b.is_empty()) {
        match merged.last_mut() {
            Some((last, acc)) if *last == role => acc.extend(blocks),
            _ => merged.push((role, blocks)),
        }
    }
    merged
        .into_iter()
        .map(|(role, blocks)| {
            let (mut content, rest): (Vec<Value>, Vec<Value>) =
                blocks.into_iter().partition(|b| b["type"] == "tool_result");
            content.extend(rest);
            json!({"role": role, "content": content})
        })
        .collect()
}
