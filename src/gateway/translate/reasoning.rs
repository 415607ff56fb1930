//! Reasoning across dialects: OpenAI `reasoning_effort` <-> Anthropic `thinking` budgets, the
//! output limit reasoning models accept, and reasoning text: Anthropic `thinking` blocks <->
//! OpenAI `reasoning_content` (the field vLLM's reasoning parsers and DeepSeek-style servers
//! answer with).
//!
//! Effort and budget map through one table (`EFFORT_BUDGETS`): low 1024, medium 4096, high
//! 16384 tokens; `minimal` and `none` ask for no thinking. A budget maps back to the effort
//! whose budget is nearest.
//!
//! Thinking blocks carry a `signature` Anthropic checks when they come back in a later turn
//! (it requires them, signed, before the `tool_use` of a turn with thinking). An OpenAI caller
//! gets the blocks verbatim in the message's `thinking_blocks` (LiteLLM's name for the same
//! thing) beside their text in `reasoning_content`, and sends them back in the assistant
//! message; `reasoning_content` alone carries no signature and is not sent to Anthropic.

use serde_json::{Map, Value, json};

use super::TranslateError;
use super::util::{expected, invalid, present};

/// Thinking budget per OpenAI `reasoning_effort`.
pub const EFFORT_BUDGETS: [(&str, u64); 3] = [("low", 1024), ("medium", 4096), ("high", 16384)];

/// Anthropic's smallest `thinking.budget_tokens`.
pub const MIN_BUDGET: u64 = 1024;

/// The Anthropic thinking budget for an OpenAI `reasoning_effort`; `None` for no thinking.
pub(crate) fn budget_for_effort(effort: &Value) -> Result<Option<u64>, TranslateError> {
    let e = effort
        .as_str()
        .ok_or_else(|| expected("reasoning_effort", "a string", effort))?;
    match e {
        "minimal" | "none" => Ok(None),
        // OpenAI's extra-high effort has no larger Anthropic counterpart in the table.
        "xhigh" => Ok(Some(EFFORT_BUDGETS[2].1)),
        _ => EFFORT_BUDGETS
            .iter()
            .find(|(name, _)| *name == e)
            .map(|(_, b)| Some(*b))
            .ok_or_else(|| {
                invalid(format!(
                    "reasoning_effort: expected none, minimal, low, medium or high, got {e:?}"
                ))
            }),
    }
}

/// The OpenAI `reasoning_effort` whose budget is nearest `budget`.
pub(crate) fn effort_for_budget(budget: u64) -> &'static str {
    EFFORT_BUDGETS
        .iter()
        .min_by_key(|(_, b)| b.abs_diff(budget))
        .map_or("medium", |(name, _)| name)
}

/// Adds Anthropic `thinking` to `out` (an Anthropic request being built from the OpenAI
/// request `req`) when `reasoning_effort` asks for it, and makes the rest of `out` acceptable
/// with thinking on. Returns whether thinking is on.
///
/// Anthropic requires `budget_tokens < max_tokens`, and both count thinking, as OpenAI's
/// `max_completion_tokens` counts reasoning tokens. When the caller's limit does not leave
/// room for the budget, `max_tokens` is raised to the budget plus the caller's limit, so the
/// caller's limit still bounds the visible answer (rather than a budget cut so small the
/// effort would mean nothing). Thinking also refuses a modified `temperature` (dropped) and a
/// `top_p` below 0.95 (raised to 0.95).
pub(crate) fn apply_effort(
    req: &Map<String, Value>,
    out: &mut Map<String, Value>,
) -> Result<bool, TranslateError> {
    let Some(effort) = present(req, "reasoning_effort") else {
        return Ok(false);
    };
    let Some(budget) = budget_for_effort(effort)? else {
        return Ok(false);
    };
    let max = out.get("max_tokens").and_then(Value::as_u64).unwrap_or(0);
    if max <= budget {
        out.insert("max_tokens".into(), (budget + max).into());
    }
    out.insert(
        "thinking".into(),
        json!({"type": "enabled", "budget_tokens": budget}),
    );
    out.remove("temperature");
    if let Some(p) = out.get("top_p").and_then(Value::as_f64)
        && p < 0.95
    {
        out.insert("top_p".into(), json!(0.95));
    }
    Ok(true)
}

/// The OpenAI `reasoning_effort` for an Anthropic request's `thinking`; `None` when thinking
/// is absent or disabled.
pub(crate) fn effort_for_thinking(
    req: &Map<String, Value>,
) -> Result<Option<&'static str>, TranslateError> {
    let Some(t) = present(req, "thinking") else {
        return Ok(None);
    };
    let t = t
        .as_object()
        .ok_or_else(|| expected("thinking", "an object", t))?;
    match t.get("type").and_then(Value::as_str) {
        Some("enabled") => {
            let budget = present(t, "budget_tokens")
                .map(|b| {
                    b.as_u64()
                        .ok_or_else(|| expected("thinking.budget_tokens", "an integer", b))
                })
                .transpose()?
                .unwrap_or(MIN_BUDGET);
            Ok(Some(effort_for_budget(budget)))
        }
        // `adaptive` lets the model choose; the OpenAI backend's own default does the same.
        Some("disabled" | "adaptive") => Ok(None),
        Some(other) => Err(invalid(format!(
            "thinking.type: expected enabled, disabled or adaptive, got {other:?}"
        ))),
        None => Err(invalid("thinking.type: required field is missing")),
    }
}

/// The reasoning text of an OpenAI message or delta: `reasoning_content` (vLLM, DeepSeek),
/// or `reasoning` (newer vLLM releases).
pub(crate) fn openai_reasoning(m: &Value) -> Option<&str> {
    m["reasoning_content"]
        .as_str()
        .or_else(|| m["reasoning"].as_str())
        .filter(|s| !s.is_empty())
}

/// Anthropic thinking blocks for an OpenAI assistant message in a request: its
/// `thinking_blocks`, which only an Anthropic answer can have produced (signed). Anything else
/// in them is refused: Anthropic would reject a forged block with a less helpful message.
pub(crate) fn request_thinking_blocks(
    m: &Map<String, Value>,
    path: &str,
) -> Result<Vec<Value>, TranslateError> {
    let Some(blocks) = present(m, "thinking_blocks") else {
        return Ok(Vec::new());
    };
    let tpath = format!("{path}.thinking_blocks");
    let blocks = blocks
        .as_array()
        .ok_or_else(|| expected(&tpath, "an array", blocks))?;
    let mut out = Vec::with_capacity(blocks.len());
    for (j, b) in blocks.iter().enumerate() {
        let bpath = format!("{tpath}[{j}]");
        let o = b
            .as_object()
            .ok_or_else(|| expected(&bpath, "a thinking block object", b))?;
        match o.get("type").and_then(Value::as_str) {
            Some("thinking") => {
                // A block with no signature did not come from Anthropic (a reasoning model
                // behind an OpenAI backend): Anthropic would refuse it, so it stays behind.
                if o.get("signature")
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.is_empty())
                {
                    out.push(b.clone());
                }
            }
            Some("redacted_thinking") => out.push(b.clone()),
            _ => {
                return Err(invalid(format!(
                    "{bpath}.type: expected thinking or redacted_thinking"
                )));
            }
        }
    }
    Ok(out)
}

/// What an Anthropic answer's thinking blocks become in an OpenAI message: the joined text
/// (`reasoning_content`) and the blocks themselves (`thinking_blocks`).
#[derive(Debug, Default)]
pub(crate) struct Thinking {
    pub text: String,
    pub blocks: Vec<Value>,
}

impl Thinking {
    /// Takes `block` if it is a thinking or redacted-thinking block.
    pub fn take(&mut self, block: &Value) -> bool {
        match block["type"].as_str() {
            Some("thinking") => {
                self.text
                    .push_str(block["thinking"].as_str().unwrap_or_default());
                self.blocks.push(block.clone());
                true
            }
            Some("redacted_thinking") => {
                self.blocks.push(block.clone());
                true
            }
            _ => false,
        }
    }

    /// Adds the fields to an OpenAI `message` (nothing when there was no thinking).
    pub fn insert_into(self, message: &mut Map<String, Value>) {
        if !self.text.is_empty() {
            message.insert("reasoning_content".into(), Value::String(self.text));
        }
        if !self.blocks.is_empty() {
            message.insert("thinking_blocks".into(), Value::Array(self.blocks));
        }
    }
}

/// An Anthropic thinking block for an OpenAI backend's reasoning text. No signature: nothing
/// signed it, and the request side never sends such a block to Anthropic.
pub(crate) fn thinking_block(text: &str) -> Value {
    json!({"type": "thinking", "thinking": text, "signature": ""})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn efforts_map_to_budgets_and_back() {
        for (effort, budget) in EFFORT_BUDGETS {
            assert_eq!(budget_for_effort(&json!(effort)).unwrap(), Some(budget));
            assert_eq!(effort_for_budget(budget), effort);
        }
        assert_eq!(budget_for_effort(&json!("minimal")).unwrap(), None);
        assert_eq!(budget_for_effort(&json!("none")).unwrap(), None);
        assert!(
            budget_for_effort(&json!("extreme"))
                .unwrap_err()
                .to_string()
                .contains("reasoning_effort")
        );
        assert_eq!(effort_for_budget(1024), "low");
        assert_eq!(effort_for_budget(2000), "low");
        assert_eq!(effort_for_budget(3000), "medium");
        assert_eq!(effort_for_budget(10_000), "medium");
        assert_eq!(effort_for_budget(11_000), "high");
        assert_eq!(effort_for_budget(64_000), "high");
    }

    #[test]
    fn effort_sets_thinking_and_raises_a_limit_too_small_for_the_budget() {
        let mut out = obj(json!({"max_tokens": 500, "temperature": 0.2, "top_p": 0.5}));
        let on = apply_effort(&obj(json!({"reasoning_effort": "medium"})), &mut out).unwrap();
        assert!(on);
        assert_eq!(
            out["thinking"],
            json!({"type": "enabled", "budget_tokens": 4096})
        );
        assert_eq!(out["max_tokens"], 4596, "budget plus the caller's limit");
        assert!(!out.contains_key("temperature"));
        assert_eq!(out["top_p"], 0.95);

        let mut out = obj(json!({"max_tokens": 20_000}));
        apply_effort(&obj(json!({"reasoning_effort": "high"})), &mut out).unwrap();
        assert_eq!(out["max_tokens"], 20_000, "room enough: kept");

        let mut out = obj(json!({"max_tokens": 100}));
        let on = apply_effort(&obj(json!({"reasoning_effort": "minimal"})), &mut out).unwrap();
        assert!(!on);
        assert_eq!(out, obj(json!({"max_tokens": 100})));
    }

    #[test]
    fn thinking_maps_to_the_nearest_effort() {
        let e = |v: Value| effort_for_thinking(&obj(v));
        assert_eq!(
            e(json!({"thinking": {"type": "enabled", "budget_tokens": 16000}})).unwrap(),
            Some("high")
        );
        assert_eq!(
            e(json!({"thinking": {"type": "enabled", "budget_tokens": 1024}})).unwrap(),
            Some("low")
        );
        assert_eq!(e(json!({"thinking": {"type": "disabled"}})).unwrap(), None);
        assert_eq!(e(json!({})).unwrap(), None);
        assert!(e(json!({"thinking": {"type": "sometimes"}})).is_err());
        assert!(e(json!({"thinking": "yes"})).is_err());
    }

    #[test]
    fn thinking_crosses_answers_both_ways() {
        use crate::gateway::translate::response;
        let signed = json!({"type": "thinking", "thinking": "Hm.", "signature": "EqQB"});
        let redacted = json!({"type": "redacted_thinking", "data": "opaque"});
        let answer = json!({"id": "m", "stop_reason": "end_turn", "content": [
            signed, redacted, {"type": "text", "text": "42"}
        ], "usage": {"input_tokens": 1, "output_tokens": 2}});
        let got = response::anthropic_to_openai(&answer, "m", 0);
        let message = &got["choices"][0]["message"];
        assert_eq!(message["reasoning_content"], "Hm.");
        assert_eq!(message["thinking_blocks"], json!([signed, redacted]));
        assert_eq!(message["content"], "42");

        let vllm = json!({"id": "c", "choices": [{"message": {"role": "assistant",
            "reasoning_content": "Because.", "content": "42"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 3,
                      "prompt_tokens_details": {"cached_tokens": 4}}});
        let got = response::openai_to_anthropic(&vllm, "m");
        assert_eq!(
            got["content"],
            json!([thinking_block("Because."), {"type": "text", "text": "42"}])
        );
        assert_eq!(
            got["usage"],
            json!({"input_tokens": 6, "cache_read_input_tokens": 4, "output_tokens": 3})
        );
    }

    #[test]
    fn requests_carry_reasoning_in_the_form_each_backend_takes() {
        use crate::gateway::translate::request;
        // OpenAI caller: the signed blocks go back first in the assistant turn.
        let signed = json!({"type": "thinking", "thinking": "Hm.", "signature": "EqQB"});
        let req = json!({"reasoning_effort": "low", "max_completion_tokens": 5000, "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": null, "reasoning_content": "Hm.",
             "thinking_blocks": [signed],
             "tool_calls": [{"id": "t", "type": "function", "function": {"name": "w", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "t", "content": "sun"}
        ]});
        let out = request::openai_to_anthropic(&req, "claude").unwrap();
        assert_eq!(
            out["thinking"],
            json!({"type": "enabled", "budget_tokens": 1024})
        );
        assert_eq!(out["max_tokens"], 5000);
        assert_eq!(out["messages"][1]["content"][0], signed);
        assert_eq!(out["messages"][1]["content"][1]["type"], "tool_use");

        // Anthropic caller: max_completion_tokens and an effort; history thinking stays
        // behind (DeepSeek-style servers refuse reasoning in their input).
        let req = json!({"max_tokens": 300, "thinking": {"type": "enabled", "budget_tokens": 16000},
            "messages": [{"role": "user", "content": "q"},
                         {"role": "assistant", "content": [signed, {"type": "text", "text": "a"}]},
                         {"role": "user", "content": "more"}]});
        let out = request::anthropic_to_openai(&req, "gpt").unwrap();
        assert_eq!(out["max_completion_tokens"], 300);
        assert!(out.get("max_tokens").is_none());
        assert_eq!(out["reasoning_effort"], "high");
        assert_eq!(
            out["messages"][1],
            json!({"role": "assistant", "content": "a"})
        );
    }

    #[test]
    fn only_signed_or_redacted_blocks_go_back_to_anthropic() {
        let m = obj(json!({"thinking_blocks": [
            {"type": "thinking", "thinking": "a", "signature": "sig"},
            {"type": "thinking", "thinking": "b", "signature": ""},
            {"type": "redacted_thinking", "data": "opaque"}
        ]}));
        assert_eq!(
            request_thinking_blocks(&m, "messages[1]").unwrap(),
            vec![
                json!({"type": "thinking", "thinking": "a", "signature": "sig"}),
                json!({"type": "redacted_thinking", "data": "opaque"})
            ]
        );
        let bad = obj(json!({"thinking_blocks": [{"type": "text", "text": "x"}]}));
        assert_eq!(
            request_thinking_blocks(&bad, "messages[1]")
                .unwrap_err()
                .to_string(),
            "messages[1].thinking_blocks[0].type: expected thinking or redacted_thinking"
        );
    }
}
