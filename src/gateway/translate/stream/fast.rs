//! The common event of a translated stream, a text delta, written straight to the caller's
//! frame: a typed borrowed parse of the upstream event and the frame around the text
//! rendered once. Building both as `Value` trees cost about 2.5 µs per chunk, most of a
//! translated stream's CPU. Anything else (the first chunk, tool calls, finishes, usage,
//! errors, unknown shapes) returns `None` and takes the general path, so the bytes written
//! here must equal what that path writes for the same event (`testdata/translate` and the
//! tests below hold them to it).

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::{AnthropicToOpenAi, OpenAiToAnthropic, OpenBlock};
use crate::gateway::translate::sse::SseEvent;

/// An Anthropic `content_block_delta` event, as far as a text delta needs.
#[derive(Deserialize)]
struct BlockDelta<'a> {
    #[serde(rename = "type", borrow)]
    ty: Option<Cow<'a, str>>,
    #[serde(borrow)]
    delta: Option<TextDelta<'a>>,
}

#[derive(Deserialize)]
struct TextDelta<'a> {
    #[serde(rename = "type", borrow)]
    ty: Option<Cow<'a, str>>,
    #[serde(borrow)]
    text: Option<Cow<'a, str>>,
}

/// An OpenAI chunk: only a plain content delta of choice 0 is taken here.
#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(borrow)]
    choices: Option<Vec<Choice<'a>>>,
    usage: Option<IgnoredAny>,
    error: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    index: Option<u64>,
    #[serde(borrow)]
    delta: Option<ContentDelta<'a>>,
    finish_reason: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct ContentDelta<'a> {
    #[serde(borrow)]
    content: Option<Cow<'a, str>>,
    refusal: Option<IgnoredAny>,
    tool_calls: Option<IgnoredAny>,
    function_call: Option<IgnoredAny>,
}

/// `text` as a JSON string.
fn json_str(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_default()
}

impl AnthropicToOpenAi {
    /// Writes the OpenAI chunk for a text delta into `out`; `None`: not one, or the role
    /// still has to be sent.
    pub fn text_fast(&mut self, ev: &SseEvent) -> Option<String> {
        if self.finished || !self.role_sent || ev.event.as_deref() != Some("content_block_delta") {
            return None;
        }
        let d: BlockDelta<'_> = serde_json::from_str(&ev.data).ok()?;
        let delta = d.delta?;
        if d.ty.as_deref() != Some("content_block_delta")
            || delta.ty.as_deref() != Some("text_delta")
        {
            return None;
        }
        let text = delta.text.filter(|t| !t.is_empty())?;
        // Keys in the order the general path's `Value` writes them (sorted).
        let tail = self.chunk_tail.get_or_insert_with(|| {
            let usage = if self.include_usage {
                ",\"usage\":null"
            } else {
                ""
            };
            format!(
                "}},\"finish_reason\":null,\"index\":0,\"logprobs\":null}}],\"created\":{},\"id\":{},\"model\":{},\"object\":\"chat.completion.chunk\"{usage}}}",
                self.created,
                json_str(&self.id),
                json_str(&self.model),
            )
        });
        Some(format!(
            "{{\"choices\":[{{\"delta\":{{\"content\":{}{tail}",
            json_str(&text)
        ))
    }
}

impl OpenAiToAnthropic {
    /// The Anthropic `content_block_delta` for a chunk that only continues the open text
    /// block; `None` for anything else.
    pub fn text_fast(&mut self, data: &str) -> Option<String> {
        let Some(OpenBlock::Text { block }) = self.open else {
            return None;
        };
        if self.stopped || self.failed || !self.started {
            return None;
        }
        let chunk: Chunk<'_> = serde_json::from_str(data).ok()?;
        if chunk.usage.is_some() || chunk.error.is_some() {
            return None;
        }
        let [choice] = chunk.choices?.try_into().ok()?;
        let delta = choice.delta?;
        if choice.index.unwrap_or(0) != 0
            || choice.finish_reason.is_some()
            || delta.refusal.is_some()
            || delta.tool_calls.is_some()
            || delta.function_call.is_some()
        {
            return None;
        }
        let text = delta.content.filter(|t| !t.is_empty())?;
        Some(format!(
            "{{\"delta\":{{\"text\":{},\"type\":\"text_delta\"}},\"index\":{block},\"type\":\"content_block_delta\"}}",
            json_str(&text)
        ))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn ev(event: &str, data: Value) -> SseEvent {
        SseEvent {
            event: Some(event.into()),
            data: data.to_string(),
        }
    }

    /// What the general path makes of the same event, on a converter in the same state.
    fn general_anthropic(c: &AnthropicToOpenAi, e: &SseEvent) -> String {
        let mut twin = c.clone();
        twin.push(e).unwrap()[0].to_string()
    }

    #[test]
    fn a_text_delta_becomes_the_same_openai_chunk_either_way() {
        for include_usage in [false, true] {
            let mut c = AnthropicToOpenAi::new("m\"odel", 7, include_usage);
            let start = json!({"type": "message_start", "message": {"id": "msg_\u{e9}", "usage": {"input_tokens": 3}}});
            let delta = ev(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "a \"quoted\"\nline \u{1F600}"}}),
            );
            assert_eq!(c.text_fast(&delta), None, "the role goes out first");
            c.push(&ev("message_start", start)).unwrap();
            let want = general_anthropic(&c, &delta);
            assert_eq!(c.text_fast(&delta).as_deref(), Some(want.as_str()));
        }
    }

    #[test]
    fn anything_but_a_text_delta_takes_the_general_path() {
        let mut c = AnthropicToOpenAi::new("m", 7, false);
        c.push(&ev(
            "message_start",
            json!({"type": "message_start", "message": {"id": "x"}}),
        ))
        .unwrap();
        let tool = json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{"}});
        assert_eq!(c.text_fast(&ev("content_block_delta", tool)), None);
        let empty = json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": ""}});
        assert_eq!(c.text_fast(&ev("content_block_delta", empty)), None);
        let stop = json!({"type": "message_stop"});
        assert_eq!(c.text_fast(&ev("message_stop", stop)), None);
    }

    #[test]
    fn a_content_chunk_becomes_the_same_anthropic_delta_either_way() {
        let mut c = OpenAiToAnthropic::new("m");
        let chunk = |delta: Value, finish: Value| json!({"id": "c", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        let first = chunk(json!({"role": "assistant", "content": "Hi"}), Value::Null);
        assert_eq!(
            c.text_fast(&first.to_string()),
            None,
            "no block is open yet"
        );
        c.push(&first);
        let next = chunk(json!({"content": "a \"b\"\n\u{1F600}"}), Value::Null);
        let mut twin = c.clone();
        let (name, want) = twin.push(&next).remove(0);
        assert_eq!(name, "content_block_delta");
        assert_eq!(c.text_fast(&next.to_string()), Some(want.to_string()));

        for other in [
            chunk(json!({"content": "x"}), json!("stop")),
            chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "{"}}]}),
                Value::Null,
            ),
            chunk(json!({"content": "x", "refusal": "no"}), Value::Null),
            json!({"id": "c", "choices": [], "usage": {"prompt_tokens": 1}}),
            json!({"error": {"message": "boom"}}),
        ] {
            assert_eq!(c.text_fast(&other.to_string()), None, "{other}");
        }
    }
}
