//! Request and answer bodies through each pair's `Translator`: same-dialect passthrough
//! (borrowed field scan, byte rewrite, typed usage scan) beside the tree path it replaced
//! (parse, clone, set the model, serialise), and translation both ways.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use switchyard::api::Dialect;
use switchyard::gateway::translate::passthrough::{RequestFields, Spans, span_of};
use switchyard::gateway::translate::{Operation, translator, usage_openai};

const OPENAI: Dialect = Dialect::Openai;
const ANTHROPIC: Dialect = Dialect::Anthropic;

/// An eight-turn conversation in the caller's dialect.
fn chat_request(caller: Dialect) -> Vec<u8> {
    let messages: Vec<Value> = (0..8)
        .map(|i| json!({"role": if i % 2 == 0 { "user" } else { "assistant" }, "content": format!("message {i}: a sentence of ordinary length about nothing much")}))
        .collect();
    let mut body =
        json!({"model": "chat", "max_tokens": 256, "temperature": 0.7, "messages": messages});
    if caller == ANTHROPIC {
        body["system"] = json!("Be brief.");
    }
    body.to_string().into_bytes()
}

fn answer(backend: Dialect) -> Vec<u8> {
    match backend {
        Dialect::Openai => json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
               "choices": [{"index": 0, "message": {"role": "assistant", "content": "a short answer of a few words"}, "finish_reason": "stop"}],
               "usage": {"prompt_tokens": 12, "completion_tokens": 8, "total_tokens": 20}}),
        Dialect::Anthropic => json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "m",
               "content": [{"type": "text", "text": "a short answer of a few words"}], "stop_reason": "end_turn",
               "usage": {"input_tokens": 12, "output_tokens": 8}}),
    }
    .to_string()
    .into_bytes()
}

/// What validation finds: where the model and stream options are.
fn spans(raw: &[u8]) -> Spans {
    let f: RequestFields<'_> = serde_json::from_slice(raw).unwrap();
    Spans {
        model: span_of(raw, f.model.unwrap()),
        stream_options: f.stream_options.map(|s| span_of(raw, s)),
    }
}

fn name(caller: Dialect, backend: Dialect) -> String {
    format!("{caller:?}_caller_{backend:?}_backend").to_lowercase()
}

fn requests(c: &mut Criterion) {
    let mut g = c.benchmark_group("request");
    for (caller, backend) in [(OPENAI, OPENAI), (OPENAI, ANTHROPIC), (ANTHROPIC, OPENAI)] {
        let raw = bytes::Bytes::from(chat_request(caller));
        let t = translator(Operation::Chat, caller, backend);
        g.bench_function(name(caller, backend), |b| {
            b.iter(|| {
                let raw = black_box(&raw);
                t.request(raw, &spans(raw), "backend-model", false).unwrap()
            })
        });
    }
    let raw = chat_request(OPENAI);
    g.bench_function("same_dialect_tree_baseline", |b| {
        b.iter(|| {
            let v: Value = serde_json::from_slice(black_box(&raw)).unwrap();
            let mut body = v.clone();
            body["model"] = json!("backend-model");
            body.to_string()
        })
    });
    g.finish();
}

fn responses(c: &mut Criterion) {
    let mut g = c.benchmark_group("response");
    for (caller, backend) in [(OPENAI, OPENAI), (OPENAI, ANTHROPIC), (ANTHROPIC, OPENAI)] {
        let raw = answer(backend);
        let t = translator(Operation::Chat, caller, backend);
        g.bench_function(name(caller, backend), |b| {
            b.iter(|| t.response(black_box(raw.clone()), "chat", 1).unwrap())
        });
    }
    let raw = answer(OPENAI);
    g.bench_function("same_dialect_tree_baseline", |b| {
        b.iter(|| {
            let v: Value = serde_json::from_slice(black_box(&raw.clone())).unwrap();
            (usage_openai(&v), serde_json::to_vec(&v).unwrap())
        })
    });
    g.finish();
}

criterion_group!(benches, requests, responses);
criterion_main!(benches);
