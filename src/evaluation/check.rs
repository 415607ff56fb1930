//! Whether one answer meets its case's expectation.

use serde_json::{Value, json};

use super::cases::Expect;

/// What a chat completion answered, as the checks need it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answer {
    /// The assistant message's text (empty when it only called tools).
    pub text: String,
    /// The names of the tools it called, in order.
    pub tool_calls: Vec<String>,
}

impl Answer {
    /// Reads an OpenAI chat completion; `Err` says what is missing.
    pub fn from_chat_completion(body: &Value) -> Result<Answer, String> {
        let message = body
            .pointer("/choices/0/message")
            .ok_or("the answer has no choices[0].message")?;
        let text = match message.get("content") {
            Some(Value::String(s)) => s.clone(),
            // Content parts, as some OpenAI-compatible servers send them.
            Some(Value::Array(parts)) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect(),
            _ => String::new(),
        };
        let tool_calls = message
            .get("tool_calls")
            .and_then(Value::as_array)
            .map(|calls| {
                calls
                    .iter()
                    .filter_map(|c| c.pointer("/function/name").and_then(Value::as_str))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Answer { text, tool_calls })
    }
}

/// The result of checking an answer without I/O.
#[derive(Debug, Clone, PartialEq)]
pub enum Checked {
    Pass,
    /// Why the answer fails, for status.
    Fail(String),
    /// A judge route must score it (see `judge_request` and `judge_score`).
    NeedsJudge,
}

/// Longest quoted part of an answer in a failure reason.
const QUOTE: usize = 60;

fn quote(s: &str) -> String {
    let mut q: String = s.chars().take(QUOTE).collect();
    if q.len() < s.len() {
        q.push('…');
    }
    format!("{q:?}")
}

pub fn check(expect: &Expect, answer: &Answer) -> Checked {
    match expect {
        Expect::JsonSchema(schema) => {
            let value: Value = match serde_json::from_str(answer.text.trim()) {
                Ok(v) => v,
                Err(e) => return Checked::Fail(format!("not JSON ({e}): {}", quote(&answer.text))),
            };
            match crate::schema::validate(schema, &value) {
                Ok(()) => Checked::Pass,
                Err(errors) => Checked::Fail(format!(
                    "JSON does not match the schema: {}",
                    errors.into_iter().take(3).collect::<Vec<_>>().join("; ")
                )),
            }
        }
        Expect::Regex(re) if re.is_match(&answer.text) => Checked::Pass,
        Expect::Regex(re) => Checked::Fail(format!(
            "{} does not match /{}/",
            quote(&answer.text),
            re.as_str()
        )),
        Expect::Exact(x) if answer.text.trim() == x => Checked::Pass,
        Expect::Exact(x) => Checked::Fail(format!(
            "{} is not exactly {}",
            quote(answer.text.trim()),
            quote(x)
        )),
        Expect::ToolCall(name) if answer.tool_calls.iter().any(|t| t == name) => Checked::Pass,
        Expect::ToolCall(name) if answer.tool_calls.is_empty() => {
            Checked::Fail(format!("called no tool (expected {name})"))
        }
        Expect::ToolCall(name) => Checked::Fail(format!(
            "called {} instead of {name}",
            answer.tool_calls.join(", ")
        )),
        Expect::Judge { .. } => Checked::NeedsJudge,
    }
}

/// The request asking a judge route to score `answer` to the case's conversation.
pub fn judge_request(rubric: &str, conversation: &Value, answer: &Answer) -> Value {
    let asked = conversation
        .as_array()
        .and_then(|m| {
            m.iter()
                .rev()
                .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        })
        .and_then(|m| m.get("content"))
        .map(|c| c.as_str().map_or_else(|| c.to_string(), str::to_owned))
        .unwrap_or_default();
    json!({
        "messages": [
            {"role": "system", "content": format!(
                "You grade answers. {rubric} Reply with only a score between 0 and 1, where 1 is best.")},
            {"role": "user", "content": format!("Question:\n{asked}\n\nAnswer:\n{}", answer.text)},
        ],
        "max_tokens": 16,
        "temperature": 0,
    })
}

/// The score a judge's answer gives: its first number, which must lie in [0, 1].
pub fn judge_score(answer: &Answer) -> Result<f64, String> {
    let re = regex::Regex::new(r"[0-9]*\.?[0-9]+").expect("a valid pattern");
    let found = re
        .find(&answer.text)
        .ok_or_else(|| format!("the judge gave no score: {}", quote(&answer.text)))?;
    let score: f64 = found
        .as_str()
        .parse()
        .map_err(|_| format!("the judge's score {:?} is not a number", found.as_str()))?;
    if (0.0..=1.0).contains(&score) {
        Ok(score)
    } else {
        Err(format!("the judge's score {score} is not between 0 and 1"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(t: &str) -> Answer {
        Answer {
            text: t.into(),
            tool_calls: vec![],
        }
    }

    #[test]
    fn a_chat_completion_gives_its_text_and_tool_calls() {
        let a = Answer::from_chat_completion(&json!({"choices": [{"message": {"role": "assistant",
            "content": null, "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]}}]}))
        .unwrap();
        assert_eq!(
            a,
            Answer {
                text: String::new(),
                tool_calls: vec!["get_weather".into()]
            }
        );
        assert!(Answer::from_chat_completion(&json!({"error": {}})).is_err());
    }

    #[test]
    fn json_schema_expectations_name_what_is_wrong() {
        let schema = json!({"type": "object", "required": ["days"], "properties": {"days": {"type": "integer"}}});
        let e = Expect::JsonSchema(schema);
        assert_eq!(check(&e, &text(r#" {"days": 30} "#)), Checked::Pass);
        let Checked::Fail(why) = check(&e, &text("Sure! {days: 30")) else {
            panic!()
        };
        assert!(
            why.starts_with("not JSON (") && why.ends_with(r#""Sure! {days: 30""#),
            "{why}"
        );
        let Checked::Fail(why) = check(&e, &text(r#"{"days": "30"}"#)) else {
            panic!()
        };
        assert!(
            why.starts_with("JSON does not match the schema: ") && why.contains("days"),
            "{why}"
        );
    }

    #[test]
    fn regex_exact_and_tool_call_expectations() {
        let re = Expect::Regex(regex::Regex::new("^echo: .*refund").unwrap());
        assert_eq!(check(&re, &text("echo: the refund window")), Checked::Pass);
        assert!(
            matches!(check(&re, &text("no")), Checked::Fail(w) if w == r#""no" does not match /^echo: .*refund/"#)
        );
        let exact = Expect::Exact("pong".into());
        assert_eq!(check(&exact, &text(" pong\n")), Checked::Pass);
        assert!(matches!(check(&exact, &text("ping")), Checked::Fail(_)));
        let tool = Expect::ToolCall("get_weather".into());
        let called = |n: &str| Answer {
            text: String::new(),
            tool_calls: vec![n.into()],
        };
        assert_eq!(check(&tool, &called("get_weather")), Checked::Pass);
        assert_eq!(
            check(&tool, &called("search")),
            Checked::Fail("called search instead of get_weather".into())
        );
        assert_eq!(
            check(&tool, &text("it is sunny")),
            Checked::Fail("called no tool (expected get_weather)".into())
        );
    }

    #[test]
    fn a_judge_is_asked_about_the_last_question_and_its_score_read() {
        let req = judge_request(
            "Is it polite?",
            &json!([{"role": "system", "content": "s"},
            {"role": "user", "content": "How do refunds work?"}]),
            &text("Within 30 days."),
        );
        let user = req["messages"][1]["content"].as_str().unwrap();
        assert!(user.contains("How do refunds work?") && user.contains("Within 30 days."));
        assert!(
            req["messages"][0]["content"]
                .as_str()
                .unwrap()
                .contains("Is it polite?")
        );
        assert_eq!(judge_score(&text("0.8")), Ok(0.8));
        assert_eq!(judge_score(&text("Score: 1")), Ok(1.0));
        assert!(
            judge_score(&text("7"))
                .unwrap_err()
                .contains("not between 0 and 1")
        );
        assert!(judge_score(&text("good")).unwrap_err().contains("no score"));
    }
}
