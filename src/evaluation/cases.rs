//! An evaluation set as users write it: a YAML list of cases in a ConfigMap, each a chat
//! request and what its answer must satisfy. Parsing is strict, and every error names the
//! case and what to fix, because the only place a user sees it is the route's status.

use serde::Deserialize;
use serde_json::{Map, Value};

/// Most cases one set may hold: each is replayed once per backend per run.
pub const MAX_CASES: usize = 200;

/// One case, ready to send.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    /// The chat-completions body without `model` (the route's model is filled in per run).
    pub body: Map<String, Value>,
    pub expect: Expect,
}

/// What an answer must satisfy.
#[derive(Debug, Clone)]
pub enum Expect {
    /// The answer's text parses as JSON and validates against this schema.
    JsonSchema(Value),
    /// The answer's text matches this regular expression somewhere.
    Regex(regex::Regex),
    /// The answer's text, trimmed, equals this.
    Exact(String),
    /// The answer calls this tool.
    ToolCall(String),
    /// A judge route scores the answer at least `min_score` (0 to 1).
    Judge {
        route: String,
        min_score: f64,
        rubric: String,
    },
}

impl Expect {
    pub fn kind(&self) -> &'static str {
        match self {
            Expect::JsonSchema(_) => "jsonSchema",
            Expect::Regex(_) => "regex",
            Expect::Exact(_) => "exact",
            Expect::ToolCall(_) => "toolCall",
            Expect::Judge { .. } => "judge",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawCase {
    name: String,
    /// A single user message, or…
    #[serde(default)]
    prompt: Option<String>,
    /// …the whole conversation, as OpenAI chat messages.
    #[serde(default)]
    messages: Option<Vec<Value>>,
    #[serde(default)]
    system: Option<String>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    response_format: Option<Value>,
    #[serde(default)]
    tools: Option<Vec<Value>>,
    #[serde(default)]
    tool_choice: Option<Value>,
    expect: RawExpect,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawExpect {
    #[serde(default)]
    json_schema: Option<Value>,
    #[serde(default)]
    regex: Option<String>,
    #[serde(default)]
    exact: Option<String>,
    #[serde(default)]
    tool_call: Option<String>,
    #[serde(default)]
    judge: Option<RawJudge>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawJudge {
    route: String,
    #[serde(default = "default_min_score")]
    min_score: f64,
    #[serde(default)]
    rubric: Option<String>,
}

fn default_min_score() -> f64 {
    0.7
}

/// Parses the cases of a set; `source` names where they came from in messages.
pub fn parse(yaml: &str, source: &str) -> Result<Vec<Case>, String> {
    let raw: Vec<RawCase> = serde_yaml::from_str(yaml).map_err(|e| {
        format!("{source} is not a list of evaluation cases: {e} (see the ModelRoute documentation for the format)")
    })?;
    if raw.is_empty() {
        return Err(format!("{source} holds no cases"));
    }
    if raw.len() > MAX_CASES {
        return Err(format!(
            "{source} holds {} cases; at most {MAX_CASES} are replayed, split it",
            raw.len()
        ));
    }
    let mut seen = std::collections::HashSet::new();
    raw.into_iter()
        .enumerate()
        .map(|(i, c)| {
            let at = format!("{source}, case {} ({:?})", i + 1, c.name);
            if c.name.is_empty() || !seen.insert(c.name.clone()) {
                return Err(format!("{at}: every case needs a name of its own"));
            }
            case(c).map_err(|e| format!("{at}: {e}"))
        })
        .collect()
}

fn case(c: RawCase) -> Result<Case, String> {
    let mut messages = match (c.prompt, c.messages) {
        (Some(p), None) => vec![serde_json::json!({"role": "user", "content": p})],
        (None, Some(m)) if !m.is_empty() => m,
        (None, Some(_)) => return Err("messages is empty".into()),
        (Some(_), Some(_)) => return Err("set prompt or messages, not both".into()),
        (None, None) => return Err("set prompt (one user message) or messages".into()),
    };
    for (i, m) in messages.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str);
        if !matches!(
            role,
            Some("system" | "developer" | "user" | "assistant" | "tool")
        ) {
            return Err(format!(
                "message {} needs a role of system, user, assistant or tool",
                i + 1
            ));
        }
    }
    if let Some(s) = c.system {
        messages.insert(0, serde_json::json!({"role": "system", "content": s}));
    }
    let mut body = Map::new();
    body.insert("messages".into(), Value::Array(messages));
    if let Some(n) = c.max_tokens {
        body.insert("max_tokens".into(), n.into());
    }
    if let Some(t) = c.temperature {
        body.insert("temperature".into(), t.into());
    }
    if let Some(f) = c.response_format {
        body.insert("response_format".into(), f);
    }
    if let Some(t) = c.tools {
        body.insert("tools".into(), Value::Array(t));
    }
    if let Some(t) = c.tool_choice {
        body.insert("tool_choice".into(), t);
    }
    let e = c.expect;
    let set = [
        e.json_schema.is_some(),
        e.regex.is_some(),
        e.exact.is_some(),
        e.tool_call.is_some(),
        e.judge.is_some(),
    ];
    if set.iter().filter(|s| **s).count() != 1 {
        return Err(
            "expect needs exactly one of jsonSchema, regex, exact, toolCall or judge".into(),
        );
    }
    let expect = if let Some(s) = e.json_schema {
        if !s.is_object() && !s.is_boolean() {
            return Err("expect.jsonSchema must be a JSON Schema object".into());
        }
        Expect::JsonSchema(s)
    } else if let Some(r) = e.regex {
        Expect::Regex(
            regex::Regex::new(&r).map_err(|e| format!("expect.regex does not compile: {e}"))?,
        )
    } else if let Some(x) = e.exact {
        Expect::Exact(x.trim().to_owned())
    } else if let Some(t) = e.tool_call {
        if t.is_empty() {
            return Err("expect.toolCall names the tool the answer must call".into());
        }
        Expect::ToolCall(t)
    } else {
        let j = e.judge.expect("exactly one expectation is set");
        if !(0.0..=1.0).contains(&j.min_score) {
            return Err("expect.judge.minScore is a score between 0 and 1".into());
        }
        if j.route.is_empty() {
            return Err("expect.judge.route names the model that judges".into());
        }
        Expect::Judge {
            route: j.route,
            min_score: j.min_score,
            rubric: j.rubric.unwrap_or_else(|| {
                "Is the answer correct, relevant and complete for the question?".into()
            }),
        }
    };
    Ok(Case {
        name: c.name,
        body,
        expect,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_parses() {
        let cases = parse(
            r#"
- name: refund-json
  system: Answer in JSON.
  prompt: What is the refund window?
  responseFormat: {type: json_object}
  maxTokens: 100
  expect:
    jsonSchema: {type: object, required: [days], properties: {days: {type: integer}}}
- name: greeting
  messages: [{role: user, content: hi}]
  expect: {regex: "^echo: hi$"}
- name: exact
  prompt: ping
  expect: {exact: " pong "}
- name: weather
  prompt: weather in Paris?
  tools: [{type: function, function: {name: get_weather, parameters: {type: object}}}]
  expect: {toolCall: get_weather}
- name: judged
  prompt: Explain refunds.
  expect: {judge: {route: judge}}
"#,
            "ConfigMap qa",
        )
        .unwrap();
        assert_eq!(cases.len(), 5);
        let kinds: Vec<_> = cases.iter().map(|c| c.expect.kind()).collect();
        assert_eq!(kinds, ["jsonSchema", "regex", "exact", "toolCall", "judge"]);
        let first = &cases[0].body;
        assert_eq!(first["messages"][0]["role"], "system");
        assert_eq!(
            first["messages"][1]["content"],
            "What is the refund window?"
        );
        assert_eq!(first["max_tokens"], 100);
        assert_eq!(first["response_format"]["type"], "json_object");
        assert!(!first.contains_key("model"));
        assert!(matches!(&cases[2].expect, Expect::Exact(x) if x == "pong"));
        assert!(matches!(&cases[4].expect, Expect::Judge { min_score, .. } if *min_score == 0.7));
    }

    #[test]
    fn errors_name_the_case_and_the_fix() {
        let err = |yaml: &str| parse(yaml, "ConfigMap qa").unwrap_err();
        assert_eq!(
            err("- name: a\n  prompt: x\n  expect: {regex: x, exact: y}\n"),
            "ConfigMap qa, case 1 (\"a\"): expect needs exactly one of jsonSchema, regex, exact, toolCall or judge"
        );
        assert_eq!(
            err("- name: a\n  expect: {exact: y}\n"),
            "ConfigMap qa, case 1 (\"a\"): set prompt (one user message) or messages"
        );
        assert!(
            err("- name: a\n  prompt: x\n  expect: {regex: '('}\n")
                .starts_with("ConfigMap qa, case 1 (\"a\"): expect.regex does not compile")
        );
        assert!(
            err("- name: a\n  prompt: x\n  expct: {exact: y}\n").contains("unknown field `expct`")
        );
        assert_eq!(
            err(
                "- name: a\n  prompt: x\n  expect: {exact: y}\n- name: a\n  prompt: x\n  expect: {exact: y}\n"
            ),
            "ConfigMap qa, case 2 (\"a\"): every case needs a name of its own"
        );
        assert_eq!(err("[]"), "ConfigMap qa holds no cases");
        assert_eq!(
            err("- name: a\n  messages: [{content: x}]\n  expect: {exact: y}\n"),
            "ConfigMap qa, case 1 (\"a\"): message 1 needs a role of system, user, assistant or tool"
        );
    }
}
