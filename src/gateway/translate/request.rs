//! Request bodies: OpenAI Chat Completions <-> Anthropic Messages.
//!
//! Both functions take the caller's body and the backend's model id and return the body to send
//! upstream. Fields with no counterpart are dropped rather than rejected, except where dropping
//! would silently change the answer the caller gets (`n > 1`, unknown content types, tool
//! arguments that are not JSON): those are `TranslateError::Invalid` with a message naming the
//! field, because the gateway returns it as a 400 to the caller.
//!
//! Not translated (dropped) from OpenAI: `seed`, `logprobs`, `top_logprobs`, `logit_bias`,
//! `frequency_penalty`, `presence_penalty`, `stream_options`, `modalities`, `audio`,
//! `prediction`, `store`, `service_tier`, `web_search_options`, message `name`s.
//! Not translated (dropped) from Anthropic: `top_k`, thinking blocks in history (see
//! `reasoning`), `cache_control`, `service_tier`, `container`, `mcp_servers`.
//!
//! Reasoning (`reasoning_effort` <-> `thinking`) is in `reasoning`, structured outputs
//! (`response_format` <-> a forced tool, `output_config.format`) in `structured`.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::util::{expected, invalid, parse_data_url, present, req_str};
use super::{TranslateError, reasoning, structured};

/// Anthropic requires `max_tokens`; OpenAI does not. Used when the caller gave no limit.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

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

fn empty_schema() -> Value {
    json!({"type": "object", "properties": {}})
}

fn positive_int(v: &Value, path: &str) -> Result<u64, TranslateError> {
    match v.as_u64() {
        Some(n) if n > 0 => Ok(n),
        _ => Err(invalid(format!(
            "{path}: expected a positive integer, got {v}"
        ))),
    }
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
            super::util::kind(&input)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn o2a(req: Value) -> Value {
        openai_to_anthropic(&req, "claude-backend").unwrap()
    }

    fn o2a_err(req: Value) -> String {
        openai_to_anthropic(&req, "claude-backend")
            .unwrap_err()
            .to_string()
    }

    fn a2o(req: Value) -> Value {
        anthropic_to_openai(&req, "gpt-backend").unwrap()
    }

    fn a2o_err(req: Value) -> String {
        anthropic_to_openai(&req, "gpt-backend")
            .unwrap_err()
            .to_string()
    }

    // ---- OpenAI -> Anthropic ----

    #[test]
    fn basic_chat_with_system_and_developer() {
        let out = o2a(json!({
            "model": "gpt-4o",
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
                {"role": "user", "content": "Hello"}
            ],
            "temperature": 1.7,
            "top_p": 0.9,
            "stream": true,
            "stream_options": {"include_usage": true},
            "user": "u-42",
            "seed": 7,
            "frequency_penalty": 0.5
        }));
        assert_eq!(
            out,
            json!({
                "model": "claude-backend",
                "system": "You are terse.\n\nAnswer in French.",
                "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}],
                "max_tokens": 4096,
                "temperature": 1.0,
                "top_p": 0.9,
                "stream": true,
                "metadata": {"user_id": "u-42"}
            })
        );
    }

    #[test]
    fn max_tokens_precedence_and_stop() {
        let base = json!({"messages": [{"role": "user", "content": "x"}]});
        let mut r = base.clone();
        r["max_tokens"] = json!(100);
        r["max_completion_tokens"] = json!(200);
        r["stop"] = json!("END");
        let out = o2a(r);
        assert_eq!(out["max_tokens"], 200);
        assert_eq!(out["stop_sequences"], json!(["END"]));

        let mut r = base.clone();
        r["max_tokens"] = json!(100);
        r["stop"] = json!(["a", "b"]);
        let out = o2a(r);
        assert_eq!(out["max_tokens"], 100);
        assert_eq!(out["stop_sequences"], json!(["a", "b"]));

        let mut r = base.clone();
        r["temperature"] = json!(-1);
        assert_eq!(o2a(r)["temperature"], 0.0);

        let mut r = base;
        r["max_tokens"] = json!(0);
        assert_eq!(o2a_err(r), "max_tokens: expected a positive integer, got 0");
    }

    #[test]
    fn consecutive_roles_are_merged() {
        let out = o2a(json!({"messages": [
            {"role": "user", "content": "one"},
            {"role": "user", "content": [{"type": "text", "text": "two"}]},
            {"role": "system", "content": "late system"},
            {"role": "user", "content": ""},
            {"role": "assistant", "content": "a"},
            {"role": "assistant", "content": "b"},
            {"role": "user", "content": "three"}
        ]}));
        assert_eq!(out["system"], "late system");
        assert_eq!(
            out["messages"],
            json!([
                {"role": "user", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]},
                {"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                {"role": "user", "content": [{"type": "text", "text": "three"}]}
            ])
        );
    }

    #[test]
    fn tool_call_and_result_sequence() {
        let out = o2a(json!({
            "messages": [
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
                {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "22C"}]},
                {"role": "user", "content": "Thanks"}
            ],
            "tools": [
                {"type": "function", "function": {"name": "get_weather", "description": "Current weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
                {"type": "function", "function": {"name": "now"}}
            ],
            "tool_choice": "auto"
        }));
        assert_eq!(
            out["messages"],
            json!([
                {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Rome?"}]},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "Rome"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
                    {"type": "tool_result", "tool_use_id": "call_2", "content": "22C"},
                    {"type": "text", "text": "Thanks"}
                ]}
            ])
        );
        assert_eq!(
            out["tools"],
            json!([
                {"name": "get_weather", "description": "Current weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
                {"name": "now", "input_schema": {"type": "object", "properties": {}}}
            ])
        );
        assert_eq!(out["tool_choice"], json!({"type": "auto"}));
    }

    #[test]
    fn tool_results_go_first_when_merged_after_text() {
        let out = o2a(json!({"messages": [
            {"role": "assistant", "content": "calling", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": ""}}]},
            {"role": "user", "content": "meanwhile"},
            {"role": "tool", "tool_call_id": "c", "content": "done"},
            {"role": "assistant", "content": "ok", "tool_calls": [{"id": "d", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "d", "content": ""}
        ]}));
        assert_eq!(
            out["messages"][3]["content"],
            json!([{"type": "tool_result", "tool_use_id": "d"}])
        );
        assert_eq!(
            out["messages"][0]["content"],
            json!([{"type": "text", "text": "calling"}, {"type": "tool_use", "id": "c", "name": "f", "input": {}}])
        );
        assert_eq!(
            out["messages"][1]["content"],
            json!([
                {"type": "tool_result", "tool_use_id": "c", "content": "done"},
                {"type": "text", "text": "meanwhile"}
            ])
        );
    }

    #[test]
    fn tool_choice_mappings() {
        let tools = json!([{"type": "function", "function": {"name": "f"}}]);
        let cases = [
            (json!("auto"), json!({"type": "auto"})),
            (json!("required"), json!({"type": "any"})),
            (json!("none"), json!({"type": "none"})),
            (
                json!({"type": "function", "function": {"name": "f"}}),
                json!({"type": "tool", "name": "f"}),
            ),
        ];
        for (choice, expected) in cases {
            let out = o2a(
                json!({"messages": [{"role": "user", "content": "x"}], "tools": tools, "tool_choice": choice}),
            );
            assert_eq!(out["tool_choice"], expected, "{choice}");
        }
        // No tool_choice and parallel calls allowed: leave Anthropic's default.
        let out = o2a(json!({"messages": [{"role": "user", "content": "x"}], "tools": tools}));
        assert!(out.get("tool_choice").is_none());
        // parallel_tool_calls: false needs a tool_choice to live on.
        let out = o2a(
            json!({"messages": [{"role": "user", "content": "x"}], "tools": tools, "parallel_tool_calls": false}),
        );
        assert_eq!(
            out["tool_choice"],
            json!({"type": "auto", "disable_parallel_tool_use": true})
        );
        let out = o2a(
            json!({"messages": [{"role": "user", "content": "x"}], "tools": tools, "tool_choice": "required", "parallel_tool_calls": false}),
        );
        assert_eq!(
            out["tool_choice"],
            json!({"type": "any", "disable_parallel_tool_use": true})
        );
        let out = o2a(
            json!({"messages": [{"role": "user", "content": "x"}], "tools": tools, "tool_choice": "none", "parallel_tool_calls": false}),
        );
        assert_eq!(out["tool_choice"], json!({"type": "none"}));
        // tool_choice without tools is dropped (Anthropic rejects it).
        let out =
            o2a(json!({"messages": [{"role": "user", "content": "x"}], "tool_choice": "required"}));
        assert!(out.get("tool_choice").is_none());
        assert!(out.get("tools").is_none());
        assert_eq!(
            o2a_err(
                json!({"messages": [{"role": "user", "content": "x"}], "tools": tools, "tool_choice": "sometimes"})
            ),
            "tool_choice: expected \"auto\", \"required\", \"none\" or a function, got \"sometimes\""
        );
    }

    #[test]
    fn legacy_functions() {
        let out = o2a(json!({
            "messages": [
                {"role": "user", "content": "add"},
                {"role": "assistant", "content": null, "function_call": {"name": "add", "arguments": "{\"a\":1,\"b\":2}"}},
                {"role": "function", "name": "add", "content": "3"}
            ],
            "functions": [{"name": "add", "parameters": {"type": "object"}}],
            "function_call": {"name": "add"}
        }));
        assert_eq!(
            out["messages"][1]["content"],
            json!([{"type": "tool_use", "id": "toolu_legacy_1", "name": "add", "input": {"a": 1, "b": 2}}])
        );
        assert_eq!(
            out["messages"][2]["content"],
            json!([{"type": "tool_result", "tool_use_id": "toolu_legacy_1", "content": "3"}])
        );
        assert_eq!(
            out["tools"],
            json!([{"name": "add", "input_schema": {"type": "object"}}])
        );
        assert_eq!(out["tool_choice"], json!({"type": "tool", "name": "add"}));
        assert_eq!(
            o2a_err(json!({"messages": [{"role": "function", "name": "zz", "content": "1"}]})),
            "messages[0]: function result for \"zz\" does not follow an assistant function_call"
        );
    }

    #[test]
    fn json_modes_become_a_forced_answer_tool_not_an_instruction() {
        let out = o2a(json!({
            "messages": [{"role": "system", "content": "Be helpful."}, {"role": "user", "content": "x"}],
            "response_format": {"type": "json_object"}
        }));
        assert_eq!(out["system"], "Be helpful.");
        assert_eq!(out["tools"][0]["name"], "structured_output__json_object");
        assert_eq!(
            out["tool_choice"],
            json!({"type": "tool", "name": "structured_output__json_object"})
        );

        let schema = json!({"type": "object", "properties": {"n": {"type": "integer"}}});
        let out = o2a(json!({
            "messages": [{"role": "user", "content": "x"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": schema}}
        }));
        assert!(out.get("system").is_none());
        assert_eq!(out["tools"][0]["input_schema"], schema);
        assert_eq!(out["tool_choice"]["name"], "structured_output__r");

        let out = o2a(
            json!({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "text"}}),
        );
        assert!(out.get("system").is_none());
        assert!(out.get("tools").is_none());
    }

    #[test]
    fn images() {
        let out = o2a(json!({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
            {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}}
        ]}]}));
        assert_eq!(
            out["messages"][0]["content"],
            json!([
                {"type": "text", "text": "What is this?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
                {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}}
            ])
        );
        assert_eq!(
            o2a_err(
                json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]}]})
            ),
            "messages[0].content[0].image_url.url: expected an http(s) URL or a base64 data URL"
        );
        assert_eq!(
            o2a_err(
                json!({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]})
            ),
            "messages[0].content[0].type: content part type \"input_audio\" cannot be translated (supported: text, image_url, file)"
        );
    }

    #[test]
    fn bad_input_errors() {
        assert_eq!(
            o2a_err(json!({"messages": [{"role": "user", "content": "x"}], "n": 2})),
            "n: only one choice per request is supported by this model's backend (got 2)"
        );
        // n = 1 and n = null are fine.
        o2a(json!({"messages": [{"role": "user", "content": "x"}], "n": 1}));
        o2a(json!({"messages": [{"role": "user", "content": "x"}], "n": null}));
        assert_eq!(
            o2a_err(json!({"messages": [
                {"role": "user", "content": "x"},
                {"role": "assistant", "content": "y"},
                {"role": "user", "content": 42}
            ]})),
            "messages[2].content: expected a string or an array of content parts, got a number"
        );
        let e = o2a_err(json!({"messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{\"a\": "}}]}
        ]}));
        assert!(
            e.starts_with("messages[1].tool_calls[0].function.arguments: not valid JSON"),
            "{e}"
        );
        assert_eq!(
            o2a_err(json!({"messages": [
                {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]}
            ]})),
            "messages[0].tool_calls[0].function.arguments: expected a JSON object, got an array"
        );
        assert_eq!(
            o2a_err(json!({"model": "x"})),
            "messages: required field is missing"
        );
        assert_eq!(
            o2a_err(json!([])),
            "request body: expected a JSON object, got an array"
        );
        assert_eq!(
            o2a_err(json!({"messages": [{"role": "system", "content": "only system"}]})),
            "messages: at least one user or assistant message with content is required"
        );
        assert_eq!(
            o2a_err(json!({"messages": [{"role": "robot", "content": "x"}]})),
            "messages[0].role: unknown role \"robot\" (expected system, developer, user, assistant or tool)"
        );
        assert_eq!(
            o2a_err(json!({"messages": [{"role": "tool", "content": "x"}]})),
            "messages[0].tool_call_id: required field is missing"
        );
        assert_eq!(
            o2a_err(
                json!({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "custom", "custom": {}}]})
            ),
            "tools[0].type: only function tools can be translated (got \"custom\")"
        );
        assert_eq!(
            o2a_err(json!({"messages": [{"role": "user", "content": "x"}], "stop": 5})),
            "stop: expected a string or an array of strings, got a number"
        );
    }

    // ---- Anthropic -> OpenAI ----

    #[test]
    fn basic_anthropic_request() {
        let out = a2o(json!({
            "model": "claude-sonnet-4-5",
            "system": [{"type": "text", "text": "Be terse.", "cache_control": {"type": "ephemeral"}}, {"type": "text", "text": "Use metric."}],
            "messages": [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": [{"type": "text", "text": "Hello!"}]},
                {"role": "user", "content": [{"type": "text", "text": "How far"}, {"type": "text", "text": "is the moon?"}]}
            ],
            "max_tokens": 1024,
            "stop_sequences": ["\n\nHuman:"],
            "temperature": 0.2,
            "top_p": 0.8,
            "top_k": 40,
            "stream": true,
            "metadata": {"user_id": "u-7"},
            "thinking": {"type": "enabled", "budget_tokens": 2000}
        }));
        assert_eq!(
            out,
            json!({
                "model": "gpt-backend",
                "messages": [
                    {"role": "system", "content": "Be terse.\n\nUse metric."},
                    {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "Hello!"},
                    {"role": "user", "content": "How far\n\nis the moon?"}
                ],
                "max_completion_tokens": 1024,
                "reasoning_effort": "low",
                "stop": ["\n\nHuman:"],
                "temperature": 0.2,
                "top_p": 0.8,
                "stream": true,
                "stream_options": {"include_usage": true},
                "user": "u-7"
            })
        );
        let out = a2o(
            json!({"system": "S", "messages": [{"role": "user", "content": "x"}], "max_tokens": 5, "stream": false}),
        );
        assert_eq!(
            out["messages"][0],
            json!({"role": "system", "content": "S"})
        );
        assert_eq!(out["stream"], false);
        assert!(out.get("stream_options").is_none());
    }

    #[test]
    fn anthropic_tool_sequence() {
        let out = a2o(json!({
            "max_tokens": 100,
            "messages": [
                {"role": "user", "content": "Weather?"},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "need tool", "signature": "s"},
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "toolu_2", "name": "now", "input": {}}
                ]},
                {"role": "user", "content": [
                    {"type": "text", "text": "Also, hurry."},
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                    {"type": "tool_result", "tool_use_id": "toolu_2", "content": [{"type": "text", "text": "no clock"}], "is_error": true}
                ]},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_3", "name": "now", "input": {}}]}
            ],
            "tools": [
                {"name": "get_weather", "description": "Weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
                {"type": "custom", "name": "now", "input_schema": {"type": "object"}}
            ],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": true}
        }));
        assert_eq!(
            out["messages"],
            json!([
                {"role": "user", "content": "Weather?"},
                {"role": "assistant", "content": "Checking.", "tool_calls": [
                    {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "toolu_2", "type": "function", "function": {"name": "now", "arguments": "{}"}}
                ]},
                {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
                {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: no clock"},
                {"role": "user", "content": "Also, hurry."},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "toolu_3", "type": "function", "function": {"name": "now", "arguments": "{}"}}
                ]}
            ])
        );
        assert_eq!(
            out["tools"],
            json!([
                {"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
                {"type": "function", "function": {"name": "now", "parameters": {"type": "object"}}}
            ])
        );
        assert_eq!(out["tool_choice"], "required");
        assert_eq!(out["parallel_tool_calls"], false);
    }

    #[test]
    fn anthropic_tool_choice_mappings() {
        let cases = [
            (json!({"type": "auto"}), json!("auto")),
            (json!({"type": "any"}), json!("required")),
            (json!({"type": "none"}), json!("none")),
            (
                json!({"type": "tool", "name": "f"}),
                json!({"type": "function", "function": {"name": "f"}}),
            ),
        ];
        for (choice, expected) in cases {
            let out = a2o(json!({
                "max_tokens": 1,
                "messages": [{"role": "user", "content": "x"}],
                "tools": [{"name": "f", "input_schema": {"type": "object"}}],
                "tool_choice": choice
            }));
            assert_eq!(out["tool_choice"], expected, "{choice}");
            assert!(out.get("parallel_tool_calls").is_none());
        }
        assert_eq!(
            a2o_err(json!({"messages": [], "tool_choice": {"type": "maybe"}})),
            "tool_choice.type: expected auto, any, tool or none, got \"maybe\""
        );
    }

    #[test]
    fn anthropic_images_and_documents() {
        let out = a2o(json!({"max_tokens": 1, "messages": [
            {"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
                {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}, "title": "spec.pdf"},
                {"type": "text", "text": "Describe."}
            ]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "screenshot", "input": {}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": [
                    {"type": "text", "text": "captured"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}
                ]}
            ]}
        ]}));
        assert_eq!(
            out["messages"][0],
            json!({"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                {"type": "file", "file": {"filename": "spec.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}},
                {"type": "text", "text": "Describe."}
            ]})
        );
        // Tool messages carry text only: the screenshot moves to a following user message.
        assert_eq!(
            out["messages"][2],
            json!({"role": "tool", "tool_call_id": "t1", "content": "captured"})
        );
        assert_eq!(
            out["messages"][3],
            json!({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]})
        );
        assert_eq!(out["messages"].as_array().unwrap().len(), 4);
    }

    #[test]
    fn anthropic_bad_input_errors() {
        assert_eq!(
            a2o_err(json!({"messages": [{"role": "user", "content": 3}]})),
            "messages[0].content: expected a string or an array of content blocks, got a number"
        );
        assert_eq!(
            a2o_err(json!({"messages": [{"role": "system", "content": "x"}]})),
            "messages[0].role: expected \"user\" or \"assistant\", got \"system\""
        );
        assert_eq!(
            a2o_err(
                json!({"messages": [{"role": "user", "content": [{"type": "search_result"}]}]})
            ),
            "messages[0].content[0].type: content block type \"search_result\" cannot be translated (supported in user messages: text, image, document, tool_result)"
        );
        assert_eq!(
            a2o_err(
                json!({"messages": [], "tools": [{"type": "web_search_20250305", "name": "web_search"}]})
            ),
            "tools[0].type: Anthropic server tool \"web_search_20250305\" has no equivalent on this model's backend"
        );
        assert_eq!(
            a2o_err(
                json!({"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}]})
            ),
            "messages[0].content[0].source.type: image source \"file\" cannot be translated (supported: base64, url)"
        );
        assert_eq!(
            a2o_err(json!({"system": 1, "messages": []})),
            "system: expected a string or an array of text blocks, got a number"
        );
    }

    // ---- Round trips ----

    #[test]
    fn openai_round_trip_is_stable() {
        let original = json!({
            "model": "m",
            "messages": [
                {"role": "system", "content": "Sys"},
                {"role": "user", "content": "Q"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"x\":1}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "R"},
                {"role": "assistant", "content": "Answer"},
                {"role": "user", "content": "More"}
            ],
            "tools": [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}}],
            "tool_choice": {"type": "function", "function": {"name": "f"}},
            "max_tokens": 50,
            "stop": ["X"],
            "temperature": 0.5,
            "user": "u"
        });
        let anthropic = openai_to_anthropic(&original, "claude").unwrap();
        let back = anthropic_to_openai(&anthropic, "m").unwrap();
        assert_eq!(back["messages"], original["messages"]);
        assert_eq!(back["tools"], original["tools"]);
        assert_eq!(back["tool_choice"], original["tool_choice"]);
        assert_eq!(back["max_completion_tokens"], 50);
        assert_eq!(back["stop"], json!(["X"]));
        assert_eq!(back["temperature"], 0.5);
        assert_eq!(back["user"], "u");
    }

    #[test]
    fn anthropic_round_trip_is_stable() {
        let original = json!({
            "model": "m",
            "system": "Sys",
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "Q"}]},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "Let me look."},
                    {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"q": "x"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "R"},
                    {"type": "text", "text": "Go on"}
                ]}
            ],
            "tools": [{"name": "f", "description": "d", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "any"},
            "max_tokens": 64,
            "stop_sequences": ["S"],
            "metadata": {"user_id": "u"}
        });
        let openai = anthropic_to_openai(&original, "gpt").unwrap();
        let back = openai_to_anthropic(&openai, "m").unwrap();
        assert_eq!(back["system"], original["system"]);
        assert_eq!(back["messages"], original["messages"]);
        assert_eq!(back["tools"], original["tools"]);
        assert_eq!(back["tool_choice"], original["tool_choice"]);
        assert_eq!(back["max_tokens"], 64);
        assert_eq!(back["stop_sequences"], json!(["S"]));
        assert_eq!(back["metadata"], json!({"user_id": "u"}));
    }
}
