//! Streaming responses: stateful converters between Anthropic Messages events and OpenAI
//! `chat.completion.chunk`s.
//!
//! Each converter is fed one upstream event at a time and returns the events to send to the
//! caller. They keep only what the target dialect needs to be well-formed: which content block
//! is open, how tool calls are numbered, usage so far.

mod fast;
mod thinking;

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::TranslateError;
use super::reasoning::openai_reasoning;
use super::response::{
    Usage, anthropic_usage, finish_reason, stop_reason, usage_anthropic, usage_openai,
};
use super::sse::SseEvent;
use super::structured::is_answer_tool;

/// Anthropic Messages stream events -> OpenAI `chat.completion.chunk`s.
#[derive(Debug, Clone)]
pub struct AnthropicToOpenAi {
    model: String,
    created: i64,
    include_usage: bool,
    id: String,
    role_sent: bool,
    /// Anthropic content block index -> OpenAI tool call index (tool calls count from 0).
    tool_indices: HashMap<u64, u64>,
    /// The content block of the structured-answer tool call (see `structured`): its input is
    /// streamed as content.
    answer_block: Option<u64>,
    /// The thinking block being streamed (see `thinking`).
    thinking: Option<thinking::Open>,
    usage: Usage,
    finish_sent: bool,
    finished: bool,
    /// What follows the text in a text delta's chunk (see `fast`); reset when the id changes.
    chunk_tail: Option<String>,
    /// The bytes around the text of the upstream's text deltas (see `fast`).
    shape: Option<fast::Shape>,
}

impl AnthropicToOpenAi {
    /// `model` is the name the caller asked for; `include_usage` mirrors the caller's
    /// `stream_options.include_usage` (a final chunk with `choices: []` and usage).
    pub fn new(model: &str, created: i64, include_usage: bool) -> Self {
        Self {
            model: model.to_owned(),
            created,
            include_usage,
            id: "chatcmpl-switchyard".to_owned(),
            role_sent: false,
            tool_indices: HashMap::new(),
            answer_block: None,
            thinking: None,
            usage: Usage::default(),
            finish_sent: false,
            finished: false,
            chunk_tail: None,
            shape: None,
        }
    }

    /// Converts one Anthropic event. An `error` event (the backend failed mid-stream) or data
    /// that is not JSON is `TranslateError::Upstream`; the caller ends the stream with an
    /// error in its dialect.
    pub fn push(&mut self, ev: &SseEvent) -> Result<Vec<Value>, TranslateError> {
        if self.finished || ev.event.as_deref() == Some("ping") {
            return Ok(Vec::new());
        }
        let data: Value = serde_json::from_str(&ev.data).map_err(|e| {
            TranslateError::Upstream(format!(
                "malformed {} event from backend: {e}",
                ev.event.as_deref().unwrap_or("stream")
            ))
        })?;
        let ty = data["type"]
            .as_str()
            .or(ev.event.as_deref())
            .unwrap_or_default();
        let mut out = Vec::new();
        match ty {
            "message_start" => {
                let msg = &data["message"];
                if let Some(id) = msg["id"].as_str() {
                    self.id = format!("chatcmpl-{id}");
                    self.chunk_tail = None;
                }
                if let Some(u) = usage_anthropic(&msg["usage"]) {
                    self.usage = u;
                }
                out.push(self.chunk(json!({"content": ""}), None));
            }
            "content_block_start" => {
                let block = &data["content_block"];
                match block["type"].as_str() {
                    Some("text") => {
                        let text = block["text"].as_str().unwrap_or_default();
                        if !text.is_empty() {
                            out.push(self.chunk(json!({"content": text}), None));
                        }
                    }
                    Some("tool_use") if is_answer_tool(block["name"].as_str().unwrap_or("")) => {
                        self.answer_block = data["index"].as_u64();
                    }
                    Some("tool_use") => {
                        let next = self.tool_indices.len() as u64;
                        let index = *self
                            .tool_indices
                            .entry(data["index"].as_u64().unwrap_or(0))
                            .or_insert(next);
                        out.push(self.chunk(
                            json!({"tool_calls": [{
                                "index": index,
                                "id": block["id"].as_str().unwrap_or_default(),
                                "type": "function",
                                "function": {
                                    "name": block["name"].as_str().unwrap_or_default(),
                                    "arguments": ""
                                }
                            }]}),
                            None,
                        ));
                    }
                    Some("thinking" | "redacted_thinking") => {
                        out.extend(self.thinking_start(data["index"].as_u64(), block));
                    }
                    // Server-tool blocks have no chat-completion equivalent.
                    _ => {}
                }
            }
            "content_block_delta" => {
                let delta = &data["delta"];
                match delta["type"].as_str() {
                    Some("text_delta") => {
                        let text = delta["text"].as_str().unwrap_or_default();
                        if !text.is_empty() {
                            out.push(self.chunk(json!({"content": text}), None));
                        }
                    }
                    Some("input_json_delta") if data["index"].as_u64() == self.answer_block => {
                        let partial = delta["partial_json"].as_str().unwrap_or_default();
                        if !partial.is_empty() {
                            out.push(self.chunk(json!({"content": partial}), None));
                        }
                    }
                    Some("thinking_delta" | "signature_delta") => {
                        out.extend(self.thinking_delta(delta));
                    }
                    Some("input_json_delta") => {
                        let partial = delta["partial_json"].as_str().unwrap_or_default();
                        let block = data["index"].as_u64().unwrap_or(0);
                        if let Some(&index) = self.tool_indices.get(&block)
                            && !partial.is_empty()
                        {
                            out.push(self.chunk(
                                json!({"tool_calls": [{
                                    "index": index,
                                    "function": {"arguments": partial}
                                }]}),
                                None,
                            ));
                        }
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(u) = usage_anthropic(&data["usage"]) {
                    self.usage.output = u.output;
                    // Newer API versions repeat the (cumulative) input count here.
                    if u.input > 0 {
                        self.usage.input = u.input;
                        self.usage.cached = u.cached;
                    }
                }
                if let Some(reason) = data["delta"]["stop_reason"].as_str() {
                    let mut finish = finish_reason(Some(reason));
                    // The structured answer is the content, not a call for the caller to run.
                    if finish == "tool_calls"
                        && self.answer_block.is_some()
                        && self.tool_indices.is_empty()
                    {
                        finish = "stop";
                    }
                    out.push(self.chunk(json!({}), Some(finish)));
                    self.finish_sent = true;
                }
            }
            "message_stop" => {
                if !self.finish_sent {
                    out.push(self.chunk(json!({}), Some("stop")));
                    self.finish_sent = true;
                }
                self.finished = true;
                if self.include_usage {
                    out.push(self.usage_chunk());
                }
            }
            "error" => {
                let err = &data["error"];
                let message = err["message"].as_str().unwrap_or("unknown error");
                return Err(TranslateError::Upstream(match err["type"].as_str() {
                    Some(t) => format!("{message} ({t})"),
                    None => message.to_owned(),
                }));
            }
            "content_block_stop" => out.extend(self.thinking_stop(data["index"].as_u64())),
            // Ping and future event types carry nothing to translate.
            _ => {}
        }
        Ok(out)
    }

    /// Tokens reported so far: input from `message_start`, output from `message_delta`.
    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// Whether `message_stop` was seen, i.e. the backend completed the response.
    pub fn finished(&self) -> bool {
        self.finished
    }

    fn chunk(&mut self, delta: Value, finish: Option<&str>) -> Value {
        let mut delta = match delta {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        if !self.role_sent {
            delta.insert("role".into(), json!("assistant"));
            self.role_sent = true;
        }
        let mut chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "delta": delta,
                "logprobs": null,
                "finish_reason": finish
            }]
        });
        if self.include_usage {
            // As OpenAI does: every chunk but the last has `usage: null`.
            chunk["usage"] = Value::Null;
        }
        chunk
    }

    fn usage_chunk(&self) -> Value {
        let Usage {
            input,
            output,
            cached,
        } = self.usage;
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": {
                "prompt_tokens": input,
                "completion_tokens": output,
                "total_tokens": input + output,
                "prompt_tokens_details": {"cached_tokens": cached}
            }
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpenBlock {
    Text { block: u64 },
    Thinking { block: u64 },
    Tool { tool: u64, block: u64 },
}

/// A tool call whose fragments came while another call's block was open (see
/// `OpenAiToAnthropic`).
#[derive(Debug, Clone)]
struct PendingCall {
    tool: u64,
    id: String,
    name: String,
    arguments: String,
}

/// OpenAI `chat.completion.chunk`s -> Anthropic Messages stream events `(event name, data)`.
///
/// Produces the sequence Anthropic SDKs expect: `message_start`, then per content block
/// `content_block_start`, `content_block_delta`..., `content_block_stop`, then `message_delta`
/// and `message_stop`.
///
/// `message_delta` carries the output token count, but OpenAI reports usage in a separate chunk
/// after the one with `finish_reason`. So a `finish_reason` closes the open block and
/// `message_delta` follows once usage is known: with the usage chunk, or at `finish()` (which
/// the caller invokes on `[DONE]` or end of stream) when the backend sends no usage.
///
/// OpenAI numbers parallel tool calls by `index` and may interleave their argument fragments
/// (0, 1, 0, 1, ...); Anthropic blocks come one after another and cannot be reopened once
/// closed. So the first call streams as it comes, and the calls that start while its block is
/// open are gathered and sent whole, in the order they started, when it closes (at the
/// finish, or when text follows). A fragment for a block already closed that way (a call that
/// resumes after text) cannot be delivered and is dropped.
///
/// Reasoning text (`reasoning_content`, see `reasoning`) becomes a thinking block, without a
/// signature (none was made).
#[derive(Debug, Clone)]
pub struct OpenAiToAnthropic {
    model: String,
    started: bool,
    next_block: u64,
    open: Option<OpenBlock>,
    /// OpenAI tool call index -> Anthropic block index.
    tools: HashMap<u64, u64>,
    /// Calls that started while another call's block was open, in the order they started.
    pending: Vec<PendingCall>,
    stop_reason: Option<&'static str>,
    delta_sent: bool,
    stopped: bool,
    failed: bool,
    usage: Usage,
    /// The bytes around the text of the upstream's content chunks (see `fast`).
    shape: Option<fast::Shape>,
}

impl OpenAiToAnthropic {
    /// `model` is the name the caller asked for.
    pub fn new(model: &str) -> Self {
        Self {
            model: model.to_owned(),
            started: false,
            next_block: 0,
            open: None,
            tools: HashMap::new(),
            pending: Vec::new(),
            stop_reason: None,
            delta_sent: false,
            stopped: false,
            failed: false,
            usage: Usage::default(),
            shape: None,
        }
    }

    /// Converts one parsed chunk (the `data:` of an OpenAI SSE event other than `[DONE]`).
    /// A chunk with an `error` object becomes an Anthropic `error` event and ends the stream.
    pub fn push(&mut self, chunk: &Value) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        if self.stopped || self.failed {
            return out;
        }
        if chunk["error"].is_object() || chunk["error"].is_string() {
            self.failed = true;
            let message = super::error::error_message(chunk)
                .unwrap_or_else(|| "the backend failed mid-stream".to_owned());
            out.push(event(
                "error",
                json!({"type": "error", "error": {"type": "api_error", "message": message}}),
            ));
            return out;
        }
        if let Some(u) = usage_openai(&chunk["usage"]) {
            self.usage = u;
        }
        self.start(chunk, &mut out);
        let choice = chunk["choices"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["index"].as_u64().unwrap_or(0) == 0));
        if let Some(choice) = choice {
            let delta = &choice["delta"];
            if let Some(text) = openai_reasoning(delta) {
                self.thinking(text, &mut out);
            }
            for key in ["content", "refusal"] {
                if let Some(text) = delta[key].as_str().filter(|t| !t.is_empty()) {
                    self.text(text, &mut out);
                }
            }
            for (pos, call) in delta["tool_calls"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                let tool = call["index"].as_u64().unwrap_or(pos as u64);
                self.tool(tool, call, &mut out);
            }
            if delta["function_call"].is_object() {
                let mut call = json!({"function": delta["function_call"].clone()});
                if delta["function_call"]["name"].is_string() {
                    call["id"] = json!("toolu_legacy");
                }
                self.tool(0, &call, &mut out);
            }
            if let Some(reason) = choice["finish_reason"].as_str() {
                self.close(&mut out);
                self.stop_reason = Some(stop_reason(Some(reason)));
            }
        }
        if self.stop_reason.is_some() && !self.delta_sent && chunk["usage"].is_object() {
            self.message_delta(&mut out);
        }
        out
    }

    /// Ends the stream: closes any open block and emits the missing `message_delta` and
    /// `message_stop`. Calling it again returns nothing; after an upstream error it returns
    /// nothing (the `error` event already ended the stream).
    pub fn finish(&mut self) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        if self.stopped || self.failed {
            return out;
        }
        self.stopped = true;
        self.start(&Value::Null, &mut out);
        self.close(&mut out);
        if !self.delta_sent {
            self.message_delta(&mut out);
        }
        out.push(event("message_stop", json!({"type": "message_stop"})));
        out
    }

    /// Tokens reported by the backend's usage chunk (zero until it arrives).
    pub fn usage(&self) -> Usage {
        self.usage
    }

    fn start(&mut self, chunk: &Value, out: &mut Vec<(String, Value)>) {
        if self.started {
            return;
        }
        self.started = true;
        let id = match chunk["id"].as_str() {
            Some(id) => format!("msg_{id}"),
            None => "msg_switchyard".to_owned(),
        };
        out.push(event(
            "message_start",
            json!({
                "type": "message_start",
                "message": {
                    "id": id,
                    "type": "message",
                    "role": "assistant",
                    "model": self.model,
                    "content": [],
                    "stop_reason": null,
                    "stop_sequence": null,
                    "usage": {"input_tokens": self.usage.input, "output_tokens": 0}
                }
            }),
        ));
    }

    /// Closes the open block and opens the next one: `open` makes its state from its index,
    /// `content_block` is what `content_block_start` announces. Returns the index.
    fn start_block(
        &mut self,
        open: impl FnOnce(u64) -> OpenBlock,
        content_block: Value,
        out: &mut Vec<(String, Value)>,
    ) -> u64 {
        self.close(out);
        let block = self.next_block;
        self.next_block += 1;
        self.open = Some(open(block));
        out.push(event(
            "content_block_start",
            json!({"type": "content_block_start", "index": block, "content_block": content_block}),
        ));
        block
    }

    fn text(&mut self, text: &str, out: &mut Vec<(String, Value)>) {
        let block = match self.open {
            Some(OpenBlock::Text { block }) => block,
            _ => self.start_block(
                |block| OpenBlock::Text { block },
                json!({"type": "text", "text": ""}),
                out,
            ),
        };
        out.push(event(
            "content_block_delta",
            json!({
                "type": "content_block_delta",
                "index": block,
                "delta": {"type": "text_delta", "text": text}
            }),
        ));
    }

    fn tool(&mut self, tool: u64, call: &Value, out: &mut Vec<(String, Value)>) {
        let block = match self.open {
            Some(OpenBlock::Tool { tool: t, block }) if t == tool => block,
            _ if self.tools.contains_key(&tool) => return, // already closed; see type docs
            Some(OpenBlock::Tool { .. }) => return self.gather(tool, call),
            _ => {
                let id = match call["id"].as_str() {
                    Some(id) if !id.is_empty() => id.to_owned(),
                    _ => format!("toolu_switchyard_{tool}"),
                };
                let content_block = json!({
                    "type": "tool_use",
                    "id": id,
                    "name": call["function"]["name"].as_str().unwrap_or_default(),
                    "input": {}
                });
                let block =
                    self.start_block(|block| OpenBlock::Tool { tool, block }, content_block, out);
                self.tools.insert(tool, block);
                block
            }
        };
        if let Some(args) = call["function"]["arguments"]
            .as_str()
            .filter(|a| !a.is_empty())
        {
            out.push(event(
                "content_block_delta",
                json!({
                    "type": "content_block_delta",
                    "index": block,
                    "delta": {"type": "input_json_delta", "partial_json": args}
                }),
            ));
        }
    }

    /// Keeps a fragment of a call that cannot stream yet (see type docs).
    fn gather(&mut self, tool: u64, call: &Value) {
        let f = &call["function"];
        let at = match self.pending.iter().position(|p| p.tool == tool) {
            Some(at) => at,
            None => {
                self.pending.push(PendingCall {
                    tool,
                    id: String::new(),
                    name: String::new(),
                    arguments: String::new(),
                });
                self.pending.len() - 1
            }
        };
        let p = &mut self.pending[at];
        if let Some(id) = call["id"].as_str().filter(|i| !i.is_empty()) {
            p.id = id.to_owned();
        }
        if let Some(name) = f["name"].as_str().filter(|n| !n.is_empty()) {
            p.name = name.to_owned();
        }
        p.arguments
            .push_str(f["arguments"].as_str().unwrap_or_default());
    }

    fn close(&mut self, out: &mut Vec<(String, Value)>) {
        if let Some(open) = self.open.take() {
            let (OpenBlock::Text { block }
            | OpenBlock::Thinking { block }
            | OpenBlock::Tool { block, .. }) = open;
            out.push(event(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": block}),
            ));
        }
        // The gathered calls, each a whole block.
        for p in std::mem::take(&mut self.pending) {
            let call = json!({
                "id": p.id,
                "function": {"name": p.name, "arguments": p.arguments}
            });
            self.tool(p.tool, &call, out);
            self.close(out);
        }
    }

    fn message_delta(&mut self, out: &mut Vec<(String, Value)>) {
        self.delta_sent = true;
        let reason = self.stop_reason.unwrap_or(if self.tools.is_empty() {
            "end_turn"
        } else {
            "tool_use"
        });
        out.push(event(
            "message_delta",
            json!({
                "type": "message_delta",
                "delta": {"stop_reason": reason, "stop_sequence": null},
                "usage": anthropic_usage(&self.usage)
            }),
        ));
    }
}

fn event(name: &str, data: Value) -> (String, Value) {
    (name.to_owned(), data)
}

#[cfg(test)]
mod reasoning_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::translate::sse::SseParser;

    /// Parses an SSE transcript into events, as the gateway would from upstream bytes.
    pub(super) fn events(transcript: &str) -> Vec<SseEvent> {
        let mut p = SseParser::new();
        p.push(transcript.as_bytes())
    }

    pub(super) fn anthropic_sse(events: &[Value]) -> String {
        events
            .iter()
            .map(|e| crate::gateway::translate::sse::encode(e["type"].as_str(), &e.to_string()))
            .collect()
    }

    fn anthropic_text_stream() -> String {
        anthropic_sse(&[
            json!({"type": "message_start", "message": {"id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5", "content": [], "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 25, "cache_read_input_tokens": 5, "output_tokens": 1}}}),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            json!({"type": "ping"}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": ", world"}}),
            json!({"type": "content_block_stop", "index": 0}),
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 12}}),
            json!({"type": "message_stop"}),
        ])
    }

    pub(super) fn run_a2o(conv: &mut AnthropicToOpenAi, transcript: &str) -> Vec<Value> {
        events(transcript)
            .iter()
            .flat_map(|e| conv.push(e).unwrap())
            .collect()
    }

    #[test]
    fn anthropic_text_stream_to_openai_chunks() {
        let mut conv = AnthropicToOpenAi::new("my-model", 1_700_000_000, true);
        let chunks = run_a2o(&mut conv, &anthropic_text_stream());
        let deltas: Vec<&Value> = chunks.iter().map(|c| &c["choices"][0]["delta"]).collect();
        assert_eq!(chunks.len(), 5, "{chunks:#?}");
        assert_eq!(*deltas[0], json!({"role": "assistant", "content": ""}));
        assert_eq!(*deltas[1], json!({"content": "Hello"}));
        assert_eq!(*deltas[2], json!({"content": ", world"}));
        assert_eq!(*deltas[3], json!({}));
        assert_eq!(chunks[3]["choices"][0]["finish_reason"], "stop");
        for c in &chunks[..3] {
            assert_eq!(c["choices"][0]["finish_reason"], Value::Null);
        }
        for c in &chunks[..4] {
            assert_eq!(c["id"], "chatcmpl-msg_01");
            assert_eq!(c["object"], "chat.completion.chunk");
            assert_eq!(c["created"], 1_700_000_000);
            assert_eq!(c["model"], "my-model");
            assert_eq!(c["usage"], Value::Null);
            assert!(c.as_object().unwrap().contains_key("usage"));
        }
        assert_eq!(chunks[4]["choices"], json!([]));
        assert_eq!(
            chunks[4]["usage"],
            json!({"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42,
                   "prompt_tokens_details": {"cached_tokens": 5}})
        );
        assert_eq!(
            conv.usage(),
            Usage {
                input: 30,
                cached: 5,
                output: 12
            }
        );
        assert!(conv.finished());
    }

    #[test]
    fn without_include_usage_there_is_no_usage_chunk() {
        let mut conv = AnthropicToOpenAi::new("m", 0, false);
        let chunks = run_a2o(&mut conv, &anthropic_text_stream());
        assert_eq!(chunks.len(), 4);
        assert!(chunks.iter().all(|c| c.get("usage").is_none()));
        assert_eq!(
            conv.usage(),
            Usage {
                input: 30,
                cached: 5,
                output: 12
            }
        );
    }

    #[test]
    fn anthropic_tool_stream_to_openai_chunks() {
        let transcript = anthropic_sse(&[
            json!({"type": "message_start", "message": {"id": "msg_02", "usage": {"input_tokens": 400, "output_tokens": 1}}}),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Checking."}}),
            json!({"type": "content_block_stop", "index": 0}),
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_A", "name": "get_weather", "input": {}}}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"city\": \"Pa"}}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "ris\"}"}}),
            json!({"type": "content_block_stop", "index": 1}),
            json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_B", "name": "now", "input": {}}}),
            json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{}"}}),
            json!({"type": "content_block_stop", "index": 2}),
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 77}}),
            json!({"type": "message_stop"}),
        ]);
        let mut conv = AnthropicToOpenAi::new("m", 0, false);
        let chunks = run_a2o(&mut conv, &transcript);
        let deltas: Vec<Value> = chunks
            .iter()
            .map(|c| c["choices"][0]["delta"].clone())
            .collect();
        assert_eq!(
            deltas,
            vec![
                json!({"role": "assistant", "content": ""}),
                json!({"content": "Checking."}),
                json!({"tool_calls": [{"index": 0, "id": "toolu_A", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}),
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\": \"Pa"}}]}),
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "ris\"}"}}]}),
                json!({"tool_calls": [{"index": 1, "id": "toolu_B", "type": "function", "function": {"name": "now", "arguments": ""}}]}),
                json!({"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]}),
                json!({}),
            ]
        );
        assert_eq!(chunks[7]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(
            conv.usage(),
            Usage {
                input: 400,
                cached: 0,
                output: 77
            }
        );
    }

    #[test]
    fn anthropic_error_event_is_upstream_error() {
        let mut conv = AnthropicToOpenAi::new("m", 0, false);
        let start = SseEvent {
            event: Some("message_start".into()),
            data: json!({"type": "message_start", "message": {"id": "x", "usage": {"input_tokens": 1}}}).to_string(),
        };
        assert_eq!(conv.push(&start).unwrap().len(), 1);
        let err = SseEvent {
            event: Some("error".into()),
            data: r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#
                .into(),
        };
        assert_eq!(
            conv.push(&err),
            Err(TranslateError::Upstream(
                "Overloaded (overloaded_error)".into()
            ))
        );
        assert!(!conv.finished());
        let garbage = SseEvent {
            event: Some("content_block_delta".into()),
            data: "{not json".into(),
        };
        assert!(
            matches!(conv.push(&garbage), Err(TranslateError::Upstream(m)) if m.starts_with("malformed content_block_delta event"))
        );
    }

    #[test]
    fn message_stop_without_stop_reason_still_finishes() {
        let mut conv = AnthropicToOpenAi::new("m", 0, false);
        let transcript = anthropic_sse(&[
            json!({"type": "message_start", "message": {"id": "x"}}),
            json!({"type": "message_stop"}),
        ]);
        let chunks = run_a2o(&mut conv, &transcript);
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[1]["choices"][0]["finish_reason"], "stop");
        // Events after message_stop are ignored.
        let late = SseEvent {
            event: None,
            data: json!({"type": "message_stop"}).to_string(),
        };
        assert!(conv.push(&late).unwrap().is_empty());
    }

    // ---- OpenAI -> Anthropic ----

    pub(super) fn chunk(delta: Value, finish: Value) -> Value {
        json!({
            "id": "chatcmpl-9",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "gpt-4o",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
            "usage": null
        })
    }

    pub(super) fn usage_chunk(prompt: u64, completion: u64) -> Value {
        json!({
            "id": "chatcmpl-9",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "gpt-4o",
            "choices": [],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
        })
    }

    /// Feeds OpenAI SSE `data:` payloads the way the gateway does: parse, `finish()` on `[DONE]`.
    pub(super) fn run_o2a(conv: &mut OpenAiToAnthropic, chunks: &[Value]) -> Vec<(String, Value)> {
        let mut wire: String = chunks
            .iter()
            .map(|c| crate::gateway::translate::sse::encode(None, &c.to_string()))
            .collect();
        wire.push_str("data: [DONE]\n\n");
        let mut out = Vec::new();
        for ev in events(&wire) {
            if ev.data == "[DONE]" {
                out.extend(conv.finish());
            } else {
                out.extend(conv.push(&serde_json::from_str(&ev.data).unwrap()));
            }
        }
        out
    }

    pub(super) fn names(events: &[(String, Value)]) -> Vec<&str> {
        events.iter().map(|(n, _)| n.as_str()).collect()
    }

    #[test]
    fn openai_text_stream_to_anthropic_events() {
        let mut conv = OpenAiToAnthropic::new("claude-alias");
        let out = run_o2a(
            &mut conv,
            &[
                chunk(json!({"role": "assistant", "content": ""}), Value::Null),
                chunk(json!({"content": "Hel"}), Value::Null),
                chunk(json!({"content": "lo"}), Value::Null),
                chunk(json!({}), json!("stop")),
                usage_chunk(11, 2),
            ],
        );
        assert_eq!(
            names(&out),
            vec![
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        for (name, data) in &out {
            assert_eq!(data["type"], name.as_str());
        }
        assert_eq!(
            out[0].1,
            json!({"type": "message_start", "message": {
                "id": "msg_chatcmpl-9", "type": "message", "role": "assistant", "model": "claude-alias",
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 0, "output_tokens": 0}
            }})
        );
        assert_eq!(
            out[1].1,
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
        );
        assert_eq!(
            out[2].1,
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}})
        );
        assert_eq!(out[3].1["delta"]["text"], "lo");
        assert_eq!(out[4].1, json!({"type": "content_block_stop", "index": 0}));
        assert_eq!(
            out[5].1,
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"input_tokens": 11, "output_tokens": 2}})
        );
        assert_eq!(out[6].1, json!({"type": "message_stop"}));
        assert_eq!(
            conv.usage(),
            Usage {
                input: 11,
                cached: 0,
                output: 2
            }
        );
        // finish() is idempotent.
        assert!(conv.finish().is_empty());
    }

    #[test]
    fn openai_tool_stream_to_anthropic_events() {
        let tc = |v: Value| chunk(json!({"tool_calls": [v]}), Value::Null);
        let mut conv = OpenAiToAnthropic::new("m");
        let out = run_o2a(
            &mut conv,
            &[
                chunk(json!({"role": "assistant", "content": null}), Value::Null),
                chunk(json!({"content": "Let me check."}), Value::Null),
                tc(
                    json!({"index": 0, "id": "call_A", "type": "function", "function": {"name": "get_weather", "arguments": ""}}),
                ),
                tc(json!({"index": 0, "function": {"arguments": "{\"city\":"}})),
                tc(json!({"index": 0, "function": {"arguments": " \"Paris\"}"}})),
                tc(
                    json!({"index": 1, "id": "call_B", "type": "function", "function": {"name": "now", "arguments": "{}"}}),
                ),
                chunk(json!({}), json!("tool_calls")),
                usage_chunk(100, 40),
            ],
        );
        assert_eq!(
            names(&out),
            vec![
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(out[3].1["index"], 0);
        assert_eq!(
            out[4].1,
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "call_A", "name": "get_weather", "input": {}}})
        );
        assert_eq!(
            out[5].1,
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"city\":"}})
        );
        assert_eq!(out[6].1["delta"]["partial_json"], " \"Paris\"}");
        assert_eq!(out[7].1["index"], 1);
        assert_eq!(out[8].1["content_block"]["id"], "call_B");
        assert_eq!(out[8].1["index"], 2);
        assert_eq!(out[9].1["delta"]["partial_json"], "{}");
        assert_eq!(out[10].1["index"], 2);
        assert_eq!(out[11].1["delta"]["stop_reason"], "tool_use");
        assert_eq!(out[11].1["usage"]["output_tokens"], 40);
        // The concatenated partial JSON of each block is the complete input.
        let args: String = out[5..=6]
            .iter()
            .map(|(_, d)| d["delta"]["partial_json"].as_str().unwrap())
            .collect();
        assert_eq!(
            serde_json::from_str::<Value>(&args).unwrap(),
            json!({"city": "Paris"})
        );
    }

    #[test]
    fn message_delta_waits_for_usage_then_is_not_repeated() {
        let mut conv = OpenAiToAnthropic::new("m");
        let a = conv.push(&chunk(json!({"content": "x"}), Value::Null));
        assert_eq!(
            names(&a),
            vec![
                "message_start",
                "content_block_start",
                "content_block_delta"
            ]
        );
        let b = conv.push(&chunk(json!({}), json!("length")));
        assert_eq!(names(&b), vec!["content_block_stop"]);
        let c = conv.push(&usage_chunk(5, 9));
        assert_eq!(names(&c), vec!["message_delta"]);
        assert_eq!(c[0].1["delta"]["stop_reason"], "max_tokens");
        assert_eq!(c[0].1["usage"]["output_tokens"], 9);
        assert_eq!(names(&conv.finish()), vec!["message_stop"]);
    }

    #[test]
    fn stream_without_usage_or_finish_reason_still_closes() {
        let mut conv = OpenAiToAnthropic::new("m");
        conv.push(&chunk(json!({"content": "partial"}), Value::Null));
        let out = conv.finish();
        assert_eq!(
            names(&out),
            vec!["content_block_stop", "message_delta", "message_stop"]
        );
        assert_eq!(out[1].1["delta"]["stop_reason"], "end_turn");
        assert_eq!(out[1].1["usage"]["output_tokens"], 0);
        // Chunks after finish are ignored.
        assert!(
            conv.push(&chunk(json!({"content": "late"}), Value::Null))
                .is_empty()
        );
    }

    #[test]
    fn empty_stream_is_still_a_valid_message() {
        let mut conv = OpenAiToAnthropic::new("m");
        let out = conv.finish();
        assert_eq!(
            names(&out),
            vec!["message_start", "message_delta", "message_stop"]
        );
        assert_eq!(out[0].1["message"]["id"], "msg_switchyard");
    }

    #[test]
    fn usage_on_finish_chunk_emits_message_delta_immediately() {
        let mut conv = OpenAiToAnthropic::new("m");
        conv.push(&chunk(json!({"content": "x"}), Value::Null));
        let mut last = chunk(json!({}), json!("stop"));
        last["usage"] = json!({"prompt_tokens": 3, "completion_tokens": 1});
        let out = conv.push(&last);
        assert_eq!(names(&out), vec!["content_block_stop", "message_delta"]);
        assert_eq!(
            out[1].1["usage"],
            json!({"input_tokens": 3, "output_tokens": 1})
        );
        assert_eq!(names(&conv.finish()), vec!["message_stop"]);
    }

    #[test]
    fn openai_stream_error_becomes_error_event() {
        let mut conv = OpenAiToAnthropic::new("m");
        conv.push(&chunk(json!({"content": "x"}), Value::Null));
        let out = conv.push(&json!({"error": {"message": "backend died", "type": "server_error"}}));
        assert_eq!(
            out,
            vec![(
                "error".to_owned(),
                json!({"type": "error", "error": {"type": "api_error", "message": "backend died"}})
            )]
        );
        assert!(conv.finish().is_empty());
    }

    #[test]
    fn round_trip_anthropic_stream_through_openai_and_back() {
        // Anthropic events -> OpenAI chunks -> Anthropic events keeps text, tools and order.
        let transcript = anthropic_sse(&[
            json!({"type": "message_start", "message": {"id": "msg_r", "usage": {"input_tokens": 10}}}),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}),
            json!({"type": "content_block_stop", "index": 0}),
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_Z", "name": "f", "input": {}}}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"k\":2}"}}),
            json!({"type": "content_block_stop", "index": 1}),
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 8}}),
            json!({"type": "message_stop"}),
        ]);
        let mut a2o = AnthropicToOpenAi::new("m", 0, true);
        let chunks = run_a2o(&mut a2o, &transcript);
        let mut o2a = OpenAiToAnthropic::new("m");
        let back = run_o2a(&mut o2a, &chunks);
        assert_eq!(
            names(&back),
            vec![
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(back[0].1["message"]["id"], "msg_chatcmpl-msg_r");
        assert_eq!(back[4].1["content_block"]["id"], "toolu_Z");
        assert_eq!(back[5].1["delta"]["partial_json"], "{\"k\":2}");
        assert_eq!(back[7].1["delta"]["stop_reason"], "tool_use");
        assert_eq!(
            back[7].1["usage"],
            json!({"input_tokens": 10, "output_tokens": 8})
        );
    }
}
