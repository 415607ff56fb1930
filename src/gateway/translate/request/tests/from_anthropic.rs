//! Anthropic Messages requests to OpenAI.

use super::*;

#[test]
fn basic_anthropic_request() {
    let out = a2o(json!({
        "model": "claude-sonnet-4-5",
        "system": [{"type": "text", "text": "Be terse.", "cache_control": {"type": "ephemeral"}}, {"type": "text", "text": "Use metric."}],
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": [{"type": "text", "text": "Hello!"}]},
            {"role": "user", "content": [{"type": "text", "text": "How far"}, {"type": "text", "text": "is the moon?"}]}
        ],
        "max_tokens": 1024,
        "stop_sequences": ["\n\nHuman:"],
        "temperature": 0.2,
        "top_p": 0.8,
        "top_k": 40,
        "stream": true,
        "metadata": {"user_id": "u-7"},
        "thinking": {"type": "enabled", "budget_tokens": 2000}
    }));
    assert_eq!(
        out,
        json!({
            "model": "gpt-backend",
            "messages": [
                {"role": "system", "content": "Be terse.\n\nUse metric."},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello!"},
                {"role": "user", "content": "How far\n\nis the moon?"}
            ],
            "max_completion_tokens": 1024,
            "reasoning_effort": "low",
            "stop": ["\n\nHuman:"],
            "temperature": 0.2,
            "top_p": 0.8,
            "stream": true,
            "stream_options": {"include_usage": true},
            "user": "u-7"
        })
    );
    let out = a2o(
        json!({"system": "S", "messages": [{"role": "user", "content": "x"}], "max_tokens": 5, "stream": false}),
    );
    assert_eq!(
        out["messages"][0],
        json!({"role": "system", "content": "S"})
    );
    assert_eq!(out["stream"], false);
    assert!(out.get("stream_options").is_none());
}

#[test]
fn anthropic_tool_sequence() {
    let out = a2o(json!({
        "max_tokens": 100,
        "messages": [
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "need tool", "signature": "s"},
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "now", "input": {}}
            ]},
            {"role": "user", "content": [
                {"type": "text", "text": "Also, hurry."},
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": [{"type": "text", "text": "no clock"}], "is_error": true}
            ]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_3", "name": "now", "input": {}}]}
        ],
        "tools": [
            {"name": "get_weather", "description": "Weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
            {"type": "custom", "name": "now", "input_schema": {"type": "object"}}
        ],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": true}
    }));
    assert_eq!(
        out["messages"],
        json!([
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "toolu_2", "type": "function", "function": {"name": "now", "arguments": "{}"}}
            ]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: no clock"},
            {"role": "user", "content": "Also, hurry."},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "toolu_3", "type": "function", "function": {"name": "now", "arguments": "{}"}}
            ]}
        ])
    );
    assert_eq!(
        out["tools"],
        json!([
            {"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
            {"type": "function", "function": {"name": "now", "parameters": {"type": "object"}}}
        ])
    );
    assert_eq!(out["tool_choice"], "required");
    assert_eq!(out["parallel_tool_calls"], false);
}

#[test]
fn anthropic_tool_choice_mappings() {
    let cases = [
        (json!({"type": "auto"}), json!("auto")),
        (json!({"type": "any"}), json!("required")),
        (json!({"type": "none"}), json!("none")),
        (
            json!({"type": "tool", "name": "f"}),
            json!({"type": "function", "function": {"name": "f"}}),
        ),
    ];
    for (choice, expected) in cases {
        let out = a2o(json!({
            "max_tokens": 1,
            "messages": [{"role": "user", "content": "x"}],
            "tools": [{"name": "f", "input_schema": {"type": "object"}}],
            "tool_choice": choice
        }));
        assert_eq!(out["tool_choice"], expected, "{choice}");
        assert!(out.get("parallel_tool_calls").is_none());
    }
    assert_eq!(
        a2o_err(json!({"messages": [], "tool_choice": {"type": "maybe"}})),
        "tool_choice.type: expected auto, any, tool or none, got \"maybe\""
    );
}

#[test]
fn anthropic_images_and_documents() {
    let out = a2o(json!({"max_tokens": 1, "messages": [
        {"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}, "title": "spec.pdf"},
            {"type": "text", "text": "Describe."}
        ]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "screenshot", "input": {}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t1", "content": [
                {"type": "text", "text": "captured"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}
            ]}
        ]}
    ]}));
    assert_eq!(
        out["messages"][0],
        json!({"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
            {"type": "file", "file": {"filename": "spec.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}},
            {"type": "text", "text": "Describe."}
        ]})
    );
    // Tool messages carry text only: the screenshot moves to a following user message.
    assert_eq!(
        out["messages"][2],
        json!({"role": "tool", "tool_call_id": "t1", "content": "captured"})
    );
    assert_eq!(
        out["messages"][3],
        json!({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]})
    );
    assert_eq!(out["messages"].as_array().unwrap().len(), 4);
}

#[test]
fn anthropic_bad_input_errors() {
    assert_eq!(
        a2o_err(json!({"messages": [{"role": "user", "content": 3}]})),
        "messages[0].content: expected a string or an array of content blocks, got a number"
    );
    assert_eq!(
        a2o_err(json!({"messages": [{"role": "system", "content": "x"}]})),
        "messages[0].role: expected \"user\" or \"assistant\", got \"system\""
    );
    assert_eq!(
        a2o_err(json!({"messages": [{"role": "user", "content": [{"type": "search_result"}]}]})),
        "messages[0].content[0].type: content block type \"search_result\" cannot be translated (supported in user messages: text, image, document, tool_result)"
    );
    assert_eq!(
        a2o_err(
            json!({"messages": [], "tools": [{"type": "web_search_20250305", "name": "web_search"}]})
        ),
        "tools[0].type: Anthropic server tool \"web_search_20250305\" has no equivalent on this model's backend"
    );
    assert_eq!(
        a2o_err(
            json!({"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}]})
        ),
        "messages[0].content[0].source.type: image source \"file\" cannot be translated (supported: base64, url)"
    );
    assert_eq!(
        a2o_err(json!({"system": 1, "messages": []})),
        "system: expected a string or an array of text blocks, got a number"
    );
}
