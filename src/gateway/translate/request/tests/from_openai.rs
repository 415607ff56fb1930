//! OpenAI Chat Completions requests to Anthropic.

use super::*;

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
