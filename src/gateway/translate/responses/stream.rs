//! A streamed Chat Completions answer as the Responses API's event sequence:
//! `response.created`, then for each output item `output_item.added`, its deltas and its
//! `…done` events, then `response.completed` (or `response.incomplete`) carrying the whole
//! response, which is what the non-streamed answer would have been.
//!
//! Chat chunks may interleave the deltas of parallel tool calls (index 0, 1, 0, 1 …); the
//! Responses API addresses every delta to its item by `output_index`, so each call keeps
//! the item it opened and all items are closed together when the answer ends.

use serde_json::{Value, json};

use super::super::Usage;
use super::super::response::usage_openai;
use super::super::sse::encode_into;
use super::answer::{
    Shell, Status, function_call_item, message_item, output_text, reasoning_item, reasoning_text,
};

enum Item {
    Reasoning {
        id: String,
        text: String,
    },
    Message {
        id: String,
        text: String,
        refusal: Option<String>,
    },
    Call {
        chat_index: u64,
        call_id: String,
        name: String,
        arguments: String,
    },
}

impl Item {
    fn done(&self) -> Value {
        match self {
            Item::Reasoning { id, text } => reasoning_item(id, text),
            Item::Message { id, text, refusal } => message_item(id, text, refusal.as_deref()),
            Item::Call {
                call_id,
                name,
                arguments,
                ..
            } => function_call_item(call_id, name, arguments, "completed"),
        }
    }
}

/// The converter's state for one stream.
pub struct ChatToResponses {
    model: String,
    created: i64,
    shell: Option<Shell>,
    seq: u64,
    items: Vec<Item>,
    usage: Usage,
    finish: Option<String>,
    finished: bool,
}

impl ChatToResponses {
    /// `model`: the name the caller asked for.
    pub fn new(model: &str, created: i64) -> Self {
        Self {
            model: model.to_owned(),
            created,
            shell: None,
            seq: 0,
            items: Vec::new(),
            usage: Usage::default(),
            finish: None,
            finished: false,
        }
    }

    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// Whether the closing `response.completed` (or `response.incomplete`) went out.
    pub fn finished(&self) -> bool {
        self.finished
    }

    fn emit(&mut self, out: &mut String, ty: &str, mut data: Value) {
        data["type"] = Value::String(ty.to_owned());
        data["sequence_number"] = json!(self.seq);
        self.seq += 1;
        encode_into(out, Some(ty), &data.to_string());
    }

    /// Opens the response on the first chunk: its id comes from the backend's.
    fn start(&mut self, chunk: &Value, out: &mut String) {
        if self.shell.is_some() {
            return;
        }
        let shell = Shell::new(chunk["id"].as_str(), &self.model, self.created);
        let snapshot = shell.object(Status::InProgress, vec![], None);
        self.shell = Some(shell);
        self.emit(out, "response.created", json!({"response": snapshot}));
        self.emit(out, "response.in_progress", json!({"response": snapshot}));
    }

    fn shell(&self) -> &Shell {
        self.shell.as_ref().expect("started before any item")
    }

    /// Converts one chat chunk (already parsed) into events appended to `out`.
    pub fn push(&mut self, chunk: &Value, out: &mut String) {
        if self.finished {
            return;
        }
        self.start(chunk, out);
        if let Some(u) = usage_openai(chunk).filter(|_| chunk["usage"].is_object()) {
            self.usage = u;
        }
        let Some(choice) = chunk["choices"].get(0) else {
            return;
        };
        let delta = &choice["delta"];
        if let Some(r) = reasoning_text(delta).filter(|r| !r.is_empty()) {
            self.reasoning_delta(r, out);
        }
        if let Some(t) = delta["content"].as_str().filter(|t| !t.is_empty()) {
            self.text_delta(t, out);
        }
        if let Some(r) = delta["refusal"].as_str().filter(|r| !r.is_empty()) {
            let at = self.message(out);
            if let Item::Message { refusal, .. } = &mut self.items[at] {
                refusal.get_or_insert_with(String::new).push_str(r);
            }
        }
        if let Some(calls) = delta["tool_calls"].as_array() {
            for c in calls {
                self.call_delta(c, out);
            }
        }
        if let Some(f) = choice["finish_reason"].as_str() {
            self.finish = Some(f.to_owned());
        }
    }

    fn reasoning_delta(&mut self, delta: &str, out: &mut String) {
        let at = match self
            .items
            .iter()
            .position(|i| matches!(i, Item::Reasoning { .. }))
        {
            Some(at) => at,
            None => {
                let id = self.shell().reasoning_id();
                let at = self.items.len();
                self.emit(
                    out,
                    "response.output_item.added",
                    json!({"output_index": at,
                    "item": {"type": "reasoning", "id": id, "summary": []}}),
                );
                self.emit(out, "response.reasoning_summary_part.added", json!({"item_id": id,
                    "output_index": at, "summary_index": 0, "part": {"type": "summary_text", "text": ""}}));
                self.items.push(Item::Reasoning {
                    id,
                    text: String::new(),
                });
                at
            }
        };
        let id = self.item_id(at);
        if let Item::Reasoning { text, .. } = &mut self.items[at] {
            text.push_str(delta);
        }
        self.emit(
            out,
            "response.reasoning_summary_text.delta",
            json!({"item_id": id,
            "output_index": at, "summary_index": 0, "delta": delta}),
        );
    }

    /// The position of the message item, opened (with its text part) if need be.
    fn message(&mut self, out: &mut String) -> usize {
        if let Some(at) = self
            .items
            .iter()
            .position(|i| matches!(i, Item::Message { .. }))
        {
            return at;
        }
        let id = self.shell().message_id();
        let at = self.items.len();
        self.emit(out, "response.output_item.added", json!({"output_index": at, "item":
            {"type": "message", "id": id, "status": "in_progress", "role": "assistant", "content": []}}));
        self.emit(
            out,
            "response.content_part.added",
            json!({"item_id": id, "output_index": at,
            "content_index": 0, "part": output_text("")}),
        );
        self.items.push(Item::Message {
            id,
            text: String::new(),
            refusal: None,
        });
        at
    }

    fn text_delta(&mut self, delta: &str, out: &mut String) {
        let at = self.message(out);
        let id = self.item_id(at);
        if let Item::Message { text, .. } = &mut self.items[at] {
            text.push_str(delta);
        }
        self.emit(
            out,
            "response.output_text.delta",
            json!({"item_id": id, "output_index": at,
            "content_index": 0, "delta": delta, "logprobs": []}),
        );
    }

    fn call_delta(&mut self, c: &Value, out: &mut String) {
        let index = c["index"].as_u64().unwrap_or(0);
        let at = self
            .items
            .iter()
            .position(|i| matches!(i, Item::Call { chat_index, .. } if *chat_index == index));
        let at = match at {
            Some(at) => at,
            None => {
                let call_id = c["id"].as_str().map_or_else(
                    || format!("call_{}_{index}", &self.shell().id[5..]),
                    str::to_owned,
                );
                let name = c["function"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let at = self.items.len();
                self.emit(
                    out,
                    "response.output_item.added",
                    json!({"output_index": at,
                    "item": function_call_item(&call_id, &name, "", "in_progress")}),
                );
                self.items.push(Item::Call {
                    chat_index: index,
                    call_id,
                    name,
                    arguments: String::new(),
                });
                at
            }
        };
        let Some(args) = c["function"]["arguments"]
            .as_str()
            .filter(|a| !a.is_empty())
        else {
            return;
        };
        let id = self.item_id(at);
        if let Item::Call { arguments, .. } = &mut self.items[at] {
            arguments.push_str(args);
        }
        self.emit(
            out,
            "response.function_call_arguments.delta",
            json!({"item_id": id,
            "output_index": at, "delta": args}),
        );
    }

    fn item_id(&self, at: usize) -> String {
        match &self.items[at] {
            Item::Reasoning { id, .. } | Item::Message { id, .. } => id.clone(),
            Item::Call { call_id, .. } => format!("fc_{call_id}"),
        }
    }

    /// Closes every item and the response. Called once the upstream ended its answer.
    pub fn finish(&mut self, out: &mut String) {
        if self.finished {
            return;
        }
        self.start(&Value::Null, out);
        if self.items.is_empty() {
            // An answer with no content still has its (empty) message, as unstreamed.
            self.message(out);
        }
        let mut output = Vec::with_capacity(self.items.len());
        for at in 0..self.items.len() {
            let id = self.item_id(at);
            let item = self.items[at].done();
            match &self.items[at] {
                Item::Reasoning { text, .. } => {
                    let text = text.clone();
                    self.emit(
                        out,
                        "response.reasoning_summary_text.done",
                        json!({"item_id": id,
                        "output_index": at, "summary_index": 0, "text": text}),
                    );
                    self.emit(out, "response.reasoning_summary_part.done", json!({"item_id": id,
                        "output_index": at, "summary_index": 0, "part": {"type": "summary_text", "text": text}}));
                }
                Item::Message { text, refusal, .. } => {
                    let (text, refusal) = (text.clone(), refusal.clone());
                    self.emit(
                        out,
                        "response.output_text.done",
                        json!({"item_id": id,
                        "output_index": at, "content_index": 0, "text": text, "logprobs": []}),
                    );
                    self.emit(
                        out,
                        "response.content_part.done",
                        json!({"item_id": id,
                        "output_index": at, "content_index": 0, "part": output_text(&text)}),
                    );
                    if let Some(r) = refusal {
                        let part = json!({"type": "refusal", "refusal": r});
                        self.emit(out, "response.content_part.added", json!({"item_id": id,
                            "output_index": at, "content_index": 1, "part": {"type": "refusal", "refusal": ""}}));
                        self.emit(
                            out,
                            "response.refusal.done",
                            json!({"item_id": id,
                            "output_index": at, "content_index": 1, "refusal": r}),
                        );
                        self.emit(
                            out,
                            "response.content_part.done",
                            json!({"item_id": id,
                            "output_index": at, "content_index": 1, "part": part}),
                        );
                    }
                }
                Item::Call { arguments, .. } => {
                    let arguments = arguments.clone();
                    self.emit(
                        out,
                        "response.function_call_arguments.done",
                        json!({"item_id": id,
                        "output_index": at, "arguments": arguments}),
                    );
                }
            }
            self.emit(
                out,
                "response.output_item.done",
                json!({"output_index": at, "item": item}),
            );
            output.push(item);
        }
        let status = Status::of_finish(self.finish.as_deref());
        let usage = self.usage;
        let response = self.shell().object(status, output, Some(&usage));
        let ty = match status {
            Status::Incomplete(_) => "response.incomplete",
            _ => "response.completed",
        };
        self.emit(out, ty, json!({"response": response}));
        self.finished = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::translate::sse::SseParser;

    fn events(out: &str) -> Vec<Value> {
        SseParser::new()
            .push(out.as_bytes())
            .iter()
            .map(|e| serde_json::from_str(&e.data).unwrap())
            .collect()
    }

    #[test]
    fn interleaved_parallel_calls_keep_their_items_and_the_end_carries_the_whole_response() {
        let mut c = ChatToResponses::new("chat", 3);
        let mut out = String::new();
        let chunk = |delta: Value, finish: Value| json!({"id": "chatcmpl-1", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        c.push(
            &chunk(
                json!({"role": "assistant", "content": "On it. "}),
                Value::Null,
            ),
            &mut out,
        );
        c.push(&chunk(json!({"tool_calls": [{"index": 0, "id": "c0", "function": {"name": "w", "arguments": "{\"a\""}}]}), Value::Null), &mut out);
        c.push(&chunk(json!({"tool_calls": [{"index": 1, "id": "c1", "function": {"name": "w", "arguments": "{\"b\""}}]}), Value::Null), &mut out);
        c.push(
            &chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}),
                Value::Null,
            ),
            &mut out,
        );
        c.push(
            &chunk(
                json!({"tool_calls": [{"index": 1, "function": {"arguments": ":2}"}}]}),
                json!("tool_calls"),
            ),
            &mut out,
        );
        c.push(&json!({"id": "chatcmpl-1", "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 4}}), &mut out);
        assert!(!c.finished());
        c.finish(&mut out);
        assert!(c.finished());
        let evs = events(&out);
        let seqs: Vec<_> = evs
            .iter()
            .map(|e| e["sequence_number"].as_u64().unwrap())
            .collect();
        assert_eq!(seqs, (0..evs.len() as u64).collect::<Vec<_>>());
        assert_eq!(evs[0]["type"], "response.created");
        let arg_deltas: Vec<_> = evs
            .iter()
            .filter(|e| e["type"] == "response.function_call_arguments.delta")
            .map(|e| {
                (
                    e["output_index"].as_u64().unwrap(),
                    e["delta"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            arg_deltas,
            [
                (1, "{\"a\"".into()),
                (2, "{\"b\"".into()),
                (1, ":1}".into()),
                (2, ":2}".into())
            ]
        );
        let last = evs.last().unwrap();
        assert_eq!(last["type"], "response.completed");
        let output = &last["response"]["output"];
        assert_eq!(output[0]["content"][0]["text"], "On it. ");
        assert_eq!(output[1]["arguments"], "{\"a\":1}");
        assert_eq!(output[2]["arguments"], "{\"b\":2}");
        assert_eq!(output[2]["call_id"], "c1");
        assert_eq!(last["response"]["usage"]["output_tokens"], 4);
        // Every item opened is closed with the same identity.
        let done: Vec<_> = evs
            .iter()
            .filter(|e| e["type"] == "response.output_item.done")
            .map(|e| e["item"]["id"].clone())
            .collect();
        let added: Vec<_> = evs
            .iter()
            .filter(|e| e["type"] == "response.output_item.added")
            .map(|e| e["item"]["id"].clone())
            .collect();
        assert_eq!(done, added);
    }

    #[test]
    fn reasoning_streams_as_a_summary_and_a_cut_answer_ends_incomplete() {
        let mut c = ChatToResponses::new("chat", 3);
        let mut out = String::new();
        c.push(
            &json!({"id": "x", "choices": [{"delta": {"reasoning_content": "Think."}}]}),
            &mut out,
        );
        c.push(&json!({"id": "x", "choices": [{"delta": {"content": "An"}, "finish_reason": "length"}]}), &mut out);
        c.finish(&mut out);
        let evs = events(&out);
        assert!(evs.iter().any(
            |e| e["type"] == "response.reasoning_summary_text.delta" && e["delta"] == "Think."
        ));
        let last = evs.last().unwrap();
        assert_eq!(last["type"], "response.incomplete");
        assert_eq!(
            last["response"]["output"][0]["summary"][0]["text"],
            "Think."
        );
        assert_eq!(last["response"]["output"][1]["content"][0]["text"], "An");
    }
}
