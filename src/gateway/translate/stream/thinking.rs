//! Reasoning in streams (see `translate::reasoning`): Anthropic `thinking_delta`s become
//! OpenAI `delta.reasoning_content` as they come; the block's signature (`signature_delta`)
//! comes whole at the block's end, so the finished block goes out once more then, verbatim,
//! in `delta.thinking_blocks`, for the caller to send back. `redacted_thinking` blocks are
//! opaque and go out whole at their start. The other way, `reasoning_content` opens an
//! Anthropic thinking block like text opens a text block.

use serde_json::{Value, json};

use super::{AnthropicToOpenAi, OpenAiToAnthropic, OpenBlock, event};

/// The Anthropic thinking block being streamed to an OpenAI caller.
#[derive(Debug, Clone)]
pub(super) struct Open {
    index: Option<u64>,
    text: String,
    signature: String,
}

impl AnthropicToOpenAi {
    pub(super) fn thinking_start(&mut self, index: Option<u64>, block: &Value) -> Vec<Value> {
        if block["type"] == "redacted_thinking" {
            return vec![self.chunk(json!({"thinking_blocks": [block]}), None)];
        }
        let text = block["thinking"].as_str().unwrap_or_default().to_owned();
        let out = if text.is_empty() {
            Vec::new()
        } else {
            vec![self.chunk(json!({"reasoning_content": text}), None)]
        };
        self.thinking = Some(Open {
            index,
            text,
            signature: block["signature"].as_str().unwrap_or_default().to_owned(),
        });
        out
    }

    pub(super) fn thinking_delta(&mut self, delta: &Value) -> Vec<Value> {
        let Some(open) = self.thinking.as_mut() else {
            return Vec::new();
        };
        if let Some(sig) = delta["signature"].as_str() {
            open.signature.push_str(sig);
            return Vec::new();
        }
        let text = delta["thinking"].as_str().unwrap_or_default();
        if text.is_empty() {
            return Vec::new();
        }
        open.text.push_str(text);
        vec![self.chunk(json!({"reasoning_content": text}), None)]
    }

    pub(super) fn thinking_stop(&mut self, index: Option<u64>) -> Vec<Value> {
        match self.thinking.take() {
            Some(open) if open.index == index => {
                let block = json!({
                    "type": "thinking",
                    "thinking": open.text,
                    "signature": open.signature
                });
                vec![self.chunk(json!({"thinking_blocks": [block]}), None)]
            }
            other => {
                self.thinking = other;
                Vec::new()
            }
        }
    }
}

impl OpenAiToAnthropic {
    pub(super) fn thinking(&mut self, text: &str, out: &mut Vec<(String, Value)>) {
        let block = match self.open {
            Some(OpenBlock::Thinking { block }) => block,
            _ => self.start_block(
                |block| OpenBlock::Thinking { block },
                json!({"type": "thinking", "thinking": "", "signature": ""}),
                out,
            ),
        };
        out.push(event(
            "content_block_delta",
            json!({
                "type": "content_block_delta",
                "index": block,
                "delta": {"type": "thinking_delta", "thinking": text}
            }),
        ));
    }
}
