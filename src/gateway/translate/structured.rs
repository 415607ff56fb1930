//! Structured outputs across dialects.
//!
//! OpenAI caller, Anthropic backend: `response_format` `json_schema` becomes a tool whose
//! `input_schema` is the schema, and the model is made to call it; the call's input is the
//! answer, returned as the message `content` (a JSON string) with `finish_reason: "stop"`, so
//! `chat.completions.parse` reads it as it reads an OpenAI answer. A forced tool call is the
//! reliable way: the model's output is held to the schema as tool inputs are. `json_object`
//! is the same with a schema that admits any object (the prompt instruction it replaces was a
//! request the model could ignore).
//!
//! The tool's name is `structured_output__` and the schema's name, cut to Anthropic's tool
//! name rules; answers recognise the call by that prefix (the answer translators do not see the
//! request), so callers' own tools may not use it. Callers' tools stay: with them the model
//! must call some tool (`any`): one of the caller's, or the answer tool. A caller's
//! `tool_choice` naming a function keeps that choice.
//!
//! Anthropic refuses a forced tool choice (`any` or `tool`) with extended thinking; only
//! `auto` and `none` are allowed. With thinking on, the choice is left `auto` and the system
//! prompt tells the model to answer through the tool: thinking is what the caller asked for
//! explicitly, and a model told so calls the tool.
//!
//! Anthropic caller, OpenAI backend: `output_config.format` (or the older beta
//! `output_format`) `json_schema` becomes `response_format` `json_schema` with `strict: true`
//! (Anthropic's structured outputs hold the answer to the schema, as strict mode does); the
//! answer is text either way.

use serde_json::{Map, Value, json};

use super::TranslateError;
use super::util::{expected, invalid, present, req_str};

/// The prefix of the name of the tool that carries a structured answer.
pub const ANSWER_TOOL_PREFIX: &str = "structured_output__";

/// Anthropic tool names: `^[a-zA-Z0-9_-]{1,64}$`.
const MAX_TOOL_NAME: usize = 64;

/// Whether a tool call is the structured answer rather than a call for the caller to run.
pub(crate) fn is_answer_tool(name: &str) -> bool {
    name.starts_with(ANSWER_TOOL_PREFIX)
}

/// The Anthropic tool for an OpenAI request's `response_format`: `None` for text or no format.
pub(crate) fn answer_tool(req: &Map<String, Value>) -> Result<Option<Value>, TranslateError> {
    let Some(rf) = present(req, "response_format") else {
        return Ok(None);
    };
    let rf = rf
        .as_object()
        .ok_or_else(|| expected("response_format", "an object", rf))?;
    let (name, description, schema) = match req_str(rf, "type", "response_format")? {
        "text" => return Ok(None),
        "json_object" => (
            "json_object".to_owned(),
            None,
            json!({"type": "object", "additionalProperties": true}),
        ),
        "json_schema" => {
            let js = match rf.get("json_schema") {
                Some(Value::Object(js)) => js,
                Some(other) => {
                    return Err(expected("response_format.json_schema", "an object", other));
                }
                None => {
                    return Err(invalid(
                        "response_format.json_schema: required field is missing",
                    ));
                }
            };
            let name = req_str(js, "name", "response_format.json_schema")?;
            let schema = match present(js, "schema") {
                Some(s @ Value::Object(_)) => s.clone(),
                Some(other) => {
                    return Err(expected(
                        "response_format.json_schema.schema",
                        "an object",
                        other,
                    ));
                }
                None => json!({"type": "object", "additionalProperties": true}),
            };
            (
                name.to_owned(),
                js.get("description").and_then(Value::as_str),
                schema,
            )
        }
        other => {
            return Err(invalid(format!(
                "response_format.type: expected text, json_object or json_schema, got {other:?}"
            )));
        }
    };
    let description = description.map_or_else(
        || "Give the final answer as this tool's input.".to_owned(),
        |d| format!("Give the final answer as this tool's input. {d}"),
    );
    Ok(Some(json!({
        "name": tool_name(&name),
        "description": description,
        "input_schema": schema
    })))
}

/// `ANSWER_TOOL_PREFIX` and `name` with the characters Anthropic refuses replaced, cut to
/// its length limit.
fn tool_name(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(MAX_TOOL_NAME - ANSWER_TOOL_PREFIX.len())
        .collect();
    let clean = if clean.is_empty() { "response" } else { &clean };
    format!("{ANSWER_TOOL_PREFIX}{clean}")
}

/// Adds the answer tool for `req`'s `response_format` to `tools` and returns the tool choice
/// to send: `choice` is the caller's, already in Anthropic's form. `system` gets the
/// instruction that replaces a forced choice when `thinking` is on.
pub(crate) fn add_answer_tool(
    req: &Map<String, Value>,
    tools: &mut Vec<Value>,
    choice: Option<Value>,
    thinking: bool,
    system: &mut Vec<String>,
) -> Result<Option<Value>, TranslateError> {
    for (j, t) in tools.iter().enumerate() {
        if let Some(name) = t["name"].as_str().filter(|n| is_answer_tool(n)) {
            return Err(invalid(format!(
                "tools[{j}]: tool name {name:?} is reserved: names starting with {ANSWER_TOOL_PREFIX:?} carry structured answers to this model's backend"
            )));
        }
    }
    let Some(tool) = answer_tool(req)? else {
        return Ok(choice);
    };
    let name = tool["name"].as_str().unwrap_or_default().to_owned();
    let caller_tools = !tools.is_empty();
    tools.push(tool);
    if thinking {
        system.push(format!(
            "Give your final answer by calling the tool {name} with the answer as its input."
        ));
        // Only `auto` and `none` may go with thinking; `none` would forbid the answer tool.
        return Ok(Some(json!({"type": "auto"})));
    }
    let forced = json!({"type": "tool", "name": name});
    Ok(Some(match choice {
        // The caller chose a function of its own: that call is the answer this turn.
        Some(c) if c["type"] == "tool" => c,
        // No tool of the caller's may be called: the answer tool must be.
        Some(c) if c["type"] == "none" => forced,
        // A caller tool or the answer: some tool call.
        Some(c) if c["type"] == "any" => c,
        _ if caller_tools => json!({"type": "any"}),
        _ => forced,
    }))
}

/// The OpenAI `response_format` for an Anthropic request's `output_config.format` (or the
/// beta `output_format`); `None` when it asks for none.
pub(crate) fn response_format(req: &Map<String, Value>) -> Result<Option<Value>, TranslateError> {
    let (format, path) = match present(req, "output_config") {
        Some(Value::Object(c)) => match present(c, "format") {
            Some(f) => (f, "output_config.format"),
            None => return Ok(None),
        },
        Some(other) => return Err(expected("output_config", "an object", other)),
        None => match present(req, "output_format") {
            Some(f) => (f, "output_format"),
            None => return Ok(None),
        },
    };
    let format = format
        .as_object()
        .ok_or_else(|| expected(path, "an object", format))?;
    match req_str(format, "type", path)? {
        "json_schema" => {
            let schema = match present(format, "schema") {
                Some(s @ Value::Object(_)) => s.clone(),
                Some(other) => return Err(expected(&format!("{path}.schema"), "an object", other)),
                None => return Err(invalid(format!("{path}.schema: required field is missing"))),
            };
            Ok(Some(json!({
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": schema, "strict": true}
            })))
        }
        other => Err(invalid(format!(
            "{path}.type: expected json_schema, got {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn schema_req() -> Map<String, Value> {
        obj(
            json!({"response_format": {"type": "json_schema", "json_schema": {
                "name": "Math Answer!", "strict": true,
                "schema": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
            }}}),
        )
    }

    #[test]
    fn names_are_sanitized_and_bounded() {
        assert_eq!(tool_name("Math Answer!"), "structured_output__Math_Answer_");
        assert_eq!(tool_name(""), "structured_output__response");
        let long = tool_name(&"x".repeat(200));
        assert_eq!(long.len(), MAX_TOOL_NAME);
        assert!(is_answer_tool(&long));
    }

    #[test]
    fn a_schema_alone_forces_its_tool() {
        let mut tools = Vec::new();
        let mut system = Vec::new();
        let choice = add_answer_tool(&schema_req(), &mut tools, None, false, &mut system).unwrap();
        assert_eq!(
            choice,
            Some(json!({"type": "tool", "name": "structured_output__Math_Answer_"}))
        );
        assert_eq!(tools.len(), 1);
        assert_eq!(tools[0]["input_schema"]["required"], json!(["n"]));
        assert!(system.is_empty());
    }

    #[test]
    fn caller_tools_stay_and_some_tool_must_be_called() {
        let weather = json!({"name": "get_weather", "input_schema": {"type": "object"}});
        let mut system = Vec::new();
        let run = |choice: Option<Value>| {
            let mut tools = vec![weather.clone()];
            let c =
                add_answer_tool(&schema_req(), &mut tools, choice, false, &mut Vec::new()).unwrap();
            assert_eq!(tools.len(), 2);
            c.unwrap()
        };
        assert_eq!(run(None), json!({"type": "any"}));
        assert_eq!(run(Some(json!({"type": "auto"}))), json!({"type": "any"}));
        assert_eq!(
            run(Some(json!({"type": "none"}))),
            json!({"type": "tool", "name": "structured_output__Math_Answer_"})
        );
        assert_eq!(
            run(Some(json!({"type": "tool", "name": "get_weather"}))),
            json!({"type": "tool", "name": "get_weather"})
        );
        let mut tools = vec![weather.clone()];
        let c = add_answer_tool(&schema_req(), &mut tools, None, true, &mut system).unwrap();
        assert_eq!(
            c,
            Some(json!({"type": "auto"})),
            "thinking allows no forced choice"
        );
        assert!(system[0].contains("structured_output__Math_Answer_"));
    }

    #[test]
    fn json_object_is_any_object_and_text_is_nothing() {
        let req = obj(json!({"response_format": {"type": "json_object"}}));
        let t = answer_tool(&req).unwrap().unwrap();
        assert_eq!(t["name"], "structured_output__json_object");
        assert_eq!(t["input_schema"]["type"], "object");
        let text = obj(json!({"response_format": {"type": "text"}}));
        assert_eq!(answer_tool(&text).unwrap(), None);
        assert!(
            answer_tool(&obj(json!({"response_format": {"type": "yaml"}})))
                .unwrap_err()
                .to_string()
                .contains("response_format.type")
        );
        assert!(
            answer_tool(&obj(
                json!({"response_format": {"type": "json_schema", "json_schema": {"schema": {}}}})
            ))
            .unwrap_err()
            .to_string()
            .contains("json_schema.name")
        );
    }

    #[test]
    fn reserved_names_are_refused() {
        let mut tools = vec![json!({"name": "structured_output__x", "input_schema": {}})];
        let err =
            add_answer_tool(&obj(json!({})), &mut tools, None, false, &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("reserved"), "{err}");
    }

    #[test]
    fn through_the_translators_the_tool_call_is_the_answer() {
        use crate::gateway::translate::{request, response};
        let req = json!({"messages": [{"role": "user", "content": "x"}],
                         "response_format": schema_req()["response_format"].clone()});
        let out = request::openai_to_anthropic(&req, "claude").unwrap();
        assert_eq!(out["tool_choice"]["type"], "tool");
        // With reasoning on, thinking stays and the choice is `auto` plus an instruction.
        let mut thinking = req.clone();
        thinking["reasoning_effort"] = json!("low");
        let out = request::openai_to_anthropic(&thinking, "claude").unwrap();
        assert_eq!(out["tool_choice"], json!({"type": "auto"}));
        assert_eq!(out["thinking"]["type"], "enabled");
        assert!(
            out["system"]
                .as_str()
                .unwrap()
                .contains("structured_output__Math_Answer_")
        );

        let answer = json!({"id": "m", "stop_reason": "tool_use", "content": [
            {"type": "text", "text": "Here it is:"},
            {"type": "tool_use", "id": "t", "name": "structured_output__Math_Answer_", "input": {"n": 4}}
        ], "usage": {"input_tokens": 1, "output_tokens": 2}});
        let got = response::anthropic_to_openai(&answer, "m", 0);
        let choice = &got["choices"][0];
        assert_eq!(choice["message"]["content"], "{\"n\":4}");
        assert!(choice["message"].get("tool_calls").is_none());
        assert_eq!(choice["finish_reason"], "stop");

        // Beside a call of the caller's own tool, that call is returned and the turn is the
        // caller's to continue.
        let mut both = answer.clone();
        both["content"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "tool_use", "id": "u", "name": "get_weather", "input": {}}));
        let got = response::anthropic_to_openai(&both, "m", 0);
        assert_eq!(got["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(
            got["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
            "get_weather"
        );
    }

    #[test]
    fn anthropic_output_config_becomes_a_strict_response_format() {
        let schema = json!({"type": "object", "properties": {}, "additionalProperties": false});
        let want = json!({"type": "json_schema", "json_schema": {"name": "output", "schema": schema, "strict": true}});
        let req =
            obj(json!({"output_config": {"format": {"type": "json_schema", "schema": schema}}}));
        assert_eq!(response_format(&req).unwrap(), Some(want.clone()));
        let beta = obj(json!({"output_format": {"type": "json_schema", "schema": schema}}));
        assert_eq!(response_format(&beta).unwrap(), Some(want));
        assert_eq!(
            response_format(&obj(json!({"output_config": {"effort": "low"}}))).unwrap(),
            None
        );
        assert!(
            response_format(&obj(json!({"output_config": {"format": {"type": "xml"}}}))).is_err()
        );
    }
}
