//! Re-framing a 101-chunk stream (100 content chunks and the usage) through each pair's
//! `StreamTranslator`, SSE parse included, beside the same-dialect path it replaced (parse
//! and re-encode every chunk).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use switchyard::api::Dialect;
use switchyard::gateway::translate::sse::{SseParser, encode_into};
use switchyard::gateway::translate::{Operation, translator};

fn openai_stream() -> Vec<u8> {
    let mut s = String::new();
    for i in 0..100 {
        let chunk = json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                           "choices": [{"index": 0, "delta": {"content": format!("word{i} ")}, "finish_reason": if i == 99 { json!("stop") } else { Value::Null }}]});
        s.push_str(&format!("data: {chunk}\n\n"));
    }
    s.push_str("data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":100}}\n\n");
    s.push_str("data: [DONE]\n\n");
    s.into_bytes()
}

fn anthropic_stream() -> Vec<u8> {
    let mut s = String::new();
    let mut ev = |name: &str, data: Value| s.push_str(&format!("event: {name}\ndata: {data}\n\n"));
    ev(
        "message_start",
        json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": [], "usage": {"input_tokens": 5, "output_tokens": 1}}}),
    );
    ev(
        "content_block_start",
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
    );
    for i in 0..100 {
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": format!("word{i} ")}}),
        );
    }
    ev(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    );
    ev(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 100}}),
    );
    ev("message_stop", json!({"type": "message_stop"}));
    s.into_bytes()
}

fn reframe(c: &mut Criterion) {
    let mut g = c.benchmark_group("sse_101_chunks");
    for (caller, backend) in [
        (Dialect::Openai, Dialect::Openai),
        (Dialect::Anthropic, Dialect::Anthropic),
        (Dialect::Openai, Dialect::Anthropic),
        (Dialect::Anthropic, Dialect::Openai),
    ] {
        let raw = match backend {
            Dialect::Openai => openai_stream(),
            Dialect::Anthropic => anthropic_stream(),
        };
        let t = translator(Operation::Chat, caller, backend);
        let name = format!("{caller:?}_caller_{backend:?}_backend").to_lowercase();
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut s = t.stream("chat", 1, false);
                let mut out = String::new();
                // As the gateway relays: each event handed over in place as it completes.
                SseParser::default()
                    .push_each(black_box(&raw), |ev| s.push(ev, &mut out))
                    .unwrap();
                assert!(s.done());
                out
            })
        });
    }
    let raw = openai_stream();
    g.bench_function("same_dialect_tree_per_chunk_baseline", |b| {
        b.iter(|| {
            let mut out = String::new();
            for ev in SseParser::default().push(black_box(&raw)) {
                if ev.data == "[DONE]" {
                    encode_into(&mut out, None, "[DONE]");
                    continue;
                }
                let v: Value = serde_json::from_str(&ev.data).unwrap();
                encode_into(&mut out, None, &v.to_string());
            }
            out
        })
    });
    g.finish();
}

criterion_group!(benches, reframe);
criterion_main!(benches);
