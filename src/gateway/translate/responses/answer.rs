//! A Chat Completions answer as a Responses API `response` object, and the pieces the
//! stream converter shares with it (ids, items, usage), so a streamed answer's final
//! `response.completed` carries exactly what the same answer unstreamed would.

use serde_json::{Value, json};

use super::super::Usage;

/// What a response object says about itself besides its output.
#[derive(Debug, Clone)]
pub struct Shell {
    pub id: String,
    /// The model name the caller asked for.
    pub model: String,
    pub created: i64,
}

impl Shell {
    /// `upstream_id`: the backend's id for the answer, kept inside ours so a support ticket
    /// can be traced to the provider's logs.
    pub fn new(upstream_id: Option<&str>, model: &str, created: i64) -> Self {
        let tail: String = upstream_id
            .unwrap_or("switchyard")
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .collect();
        Self {
            id: format!("resp_{tail}"),
            model: model.to_owned(),
            created,
        }
    }

    pub fn message_id(&self) -> String {
        format!("msg_{}", &self.id[5..])
    }

    pub fn reasoning_id(&self) -> String {
        format!("rs_{}", &self.id[5..])
    }

    /// The response object in a given state; `output` and `usage` as far as known.
    pub fn object(&self, status: Status, output: Vec<Value>, usage: Option<&Usage>) -> Value {
        let incomplete = match status {
            Status::Incomplete(reason) => json!({"reason": reason}),
            _ => Value::Null,
        };
        json!({
            "id": self.id,
            "object": "response",
            "created_at": self.created,
            "status": status.as_str(),
            "model": self.model,
            "output": output,
            "usage": usage.map(usage_object),
            "error": null,
            "incomplete_details": incomplete,
            "instructions": null,
            "metadata": {},
            "parallel_tool_calls": true,
            "temperature": null,
            "top_p": null,
            "tool_choice": "auto",
            "tools": [],
            "text": {"format": {"type": "text"}},
        })
    }
}

/// A response's `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    InProgress,
    Completed,
    /// Stopped early; the reason as the Responses API names it.
    Incomplete(&'static str),
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::InProgress => "in_progress",
            Status::Completed => "completed",
            Status::Incomplete(_) => "incomplete",
        }
    }

    /// The status a Chat Completions `finish_reason` ends a response in.
    pub fn of_finish(finish_reason: Option<&str>) -> Self {
        match finish_reason {
            Some("length") => Status::Incomplete("max_output_tokens"),
            Some("content_filter") => Status::Incomplete("content_filter"),
            _ => Status::Completed,
        }
    }
}

/// The Responses `usage` object. Chat's prompt tokens include the cached ones, as Responses'
/// input tokens do.
pub fn usage_object(u: &Usage) -> Value {
    json!({
        "input_tokens": u.input,
        "input_tokens_details": {"cached_tokens": u.cached},
        "output_tokens": u.output,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": u.input + u.output,
    })
}

/// A finished message item holding `text` (or a refusal).
pub fn message_item(id: &str, text: &str, refusal: Option<&str>) -> Value {
    let mut content = Vec::new();
    if !text.is_empty() || refusal.is_none() {
        content.push(output_text(text));
    }
    if let Some(r) = refusal {
        content.push(json!({"type": "refusal", "refusal": r}));
    }
    json!({"type": "message", "id": id, "status": "completed", "role": "assistant", "content": content})
}

pub fn output_text(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

/// A function call item; `status` is `in_progress` while its arguments stream.
pub fn function_call_item(call_id: &str, name: &str, arguments: &str, status: &str) -> Value {
    json!({
        "type": "function_call",
        "id": format!("fc_{call_id}"),
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    })
}

/// A reasoning item carrying the model's reasoning text (vLLM's `reasoning_content`) as
/// its summary: the one place the Responses API shows reasoning to callers.
pub fn reasoning_item(id: &str, text: &str) -> Value {
    json!({"type": "reasoning", "id": id, "summary": [{"type": "summary_text", "text": text}]})
}

/// The Responses object for a Chat Completions answer `chat`; `model` is the caller's name.
pub fn from_chat(chat: &Value, model: &str, created: i64, usage: &Usage) -> Value {
    let shell = Shell::new(chat["id"].as_str(), model, created);
    let choice = &chat["choices"][0];
    let message = &choice["message"];
    let mut output = Vec::new();
    if let Some(r) = reasoning_text(message).filter(|r| !r.is_empty()) {
        output.push(reasoning_item(&shell.reasoning_id(), r));
    }
    let text = content_text(&message["content"]);
    let refusal = message["refusal"].as_str();
    let calls = message["tool_calls"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    if !text.is_empty() || refusal.is_some() || calls.is_empty() {
        output.push(message_item(&shell.message_id(), &text, refusal));
    }
    for c in calls {
        let f = &c["function"];
        output.push(function_call_item(
            c["id"].as_str().unwrap_or_default(),
            f["name"].as_str().unwrap_or_default(),
            f["arguments"].as_str().unwrap_or("{}"),
            "completed",
        ));
    }
    shell.object(
        Status::of_finish(choice["finish_reason"].as_str()),
        output,
        Some(usage),
    )
}

/// The reasoning text of a chat message or delta: `reasoning_content` (vLLM, DeepSeek) or
/// `reasoning` (newer vLLM, OpenRouter).
pub fn reasoning_text(m: &Value) -> Option<&str> {
    m["reasoning_content"].as_str().or(m["reasoning"].as_str())
}

/// A chat message's content as text: a string or (from some servers) text parts.
fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chat_answer_becomes_a_response_with_its_items_and_usage() {
        let chat = json!({"id": "chatcmpl-42", "choices": [{"index": 0, "finish_reason": "tool_calls",
            "message": {"role": "assistant", "content": "Checking.", "reasoning_content": "Two cities.",
                "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]}}]});
        let usage = Usage {
            input: 10,
            cached: 4,
            output: 5,
        };
        let r = from_chat(&chat, "chat", 7, &usage);
        assert_eq!(r["id"], "resp_chatcmpl-42");
        assert_eq!(r["status"], "completed");
        assert_eq!(r["model"], "chat");
        let types: Vec<_> = r["output"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["reasoning", "message", "function_call"]);
        assert_eq!(r["output"][1]["content"][0]["text"], "Checking.");
        assert_eq!(r["output"][2]["call_id"], "call_1");
        assert_eq!(r["usage"]["input_tokens_details"]["cached_tokens"], 4);
        assert_eq!(r["usage"]["total_tokens"], 15);
    }

    #[test]
    fn a_cut_answer_is_incomplete_with_the_reason() {
        let chat =
            json!({"choices": [{"finish_reason": "length", "message": {"content": "Once upon"}}]});
        let r = from_chat(&chat, "chat", 7, &Usage::default());
        assert_eq!(r["status"], "incomplete");
        assert_eq!(r["incomplete_details"]["reason"], "max_output_tokens");
        assert_eq!(r["output"][0]["content"][0]["text"], "Once upon");
    }
}
