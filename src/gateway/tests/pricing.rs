//! Every pricing form costs an answer the same way on every path: both backend dialects,
//! both caller dialects (passthrough and translated), streamed and not. Each upstream
//! reports 1000 prompt tokens, 600 of them read from its prompt cache, and 200 output tokens.

use serde_json::json;

use super::*;
use crate::gateway::translate::Usage;

const USAGE: Usage = Usage {
    input: 1000,
    cached: 600,
    output: 200,
};

/// An upstream of `dialect` answering every request with `USAGE`, streamed when asked.
async fn cached_upstream(dialect: &'static str) -> Upstream {
    Upstream::start(move |_, req| {
        let stream = req["stream"].as_bool().unwrap_or(false);
        match (dialect, stream) {
            ("openai", false) => Reply::Json(
                200,
                json!({"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 1000, "completion_tokens": 200, "total_tokens": 1200,
                                 "prompt_tokens_details": {"cached_tokens": 600}}}),
            ),
            ("openai", true) => {
                let mut events = openai_stream(&["hi"], Duration::ZERO);
                let done = events.pop().expect("[DONE]");
                events.push((
                    Duration::ZERO,
                    sse(&json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [],
                                "usage": {"prompt_tokens": 1000, "completion_tokens": 200, "total_tokens": 1200,
                                          "prompt_tokens_details": {"cached_tokens": 600}}})
                    .to_string()),
                ));
                events.push(done);
                Reply::Sse(events)
            }
            // Anthropic counts the three kinds of input apart: 300 + 600 read + 100 written.
            (_, false) => Reply::Json(
                200,
                json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "c",
                       "content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn", "stop_sequence": null,
                       "usage": {"input_tokens": 300, "cache_read_input_tokens": 600,
                                 "cache_creation_input_tokens": 100, "output_tokens": 200}}),
            ),
            (_, true) => {
                let z = Duration::ZERO;
                Reply::Sse(vec![
                    (z, sse_event("message_start", json!({"type": "message_start", "message": {"id": "msg_1", "type": "message",
                        "role": "assistant", "model": "c", "content": [], "stop_reason": null, "stop_sequence": null,
                        "usage": {"input_tokens": 300, "cache_read_input_tokens": 600, "cache_creation_input_tokens": 100, "output_tokens": 1}}}))),
                    (z, sse_event("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}))),
                    (z, sse_event("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}}))),
                    (z, sse_event("content_block_stop", json!({"type": "content_block_stop", "index": 0}))),
                    (z, sse_event("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 200}}))),
                    (z, sse_event("message_stop", json!({"type": "message_stop"}))),
                ])
            }
        }
    })
    .await
}

/// Sends one request of each kind (caller dialect × streamed or not) to a backend of
/// `dialect` priced with `pricing`, and checks after each that the tokens and the cost
/// counted grew by exactly one answer's.
async fn each_path_costs(dialect: &'static str, pricing: Value, per_answer: f64) {
    let up = cached_upstream(dialect).await;
    let h = Harness::new(
        World::new(
            route(&[("priced", 1)], &[]),
            vec![external(
                "priced",
                dialect,
                &up,
                json!({"pricing": pricing}),
            )],
        ),
        config(),
    );
    let mut n = 0.0;
    for caller in [Dialect::Openai, Dialect::Anthropic] {
        for stream in [false, true] {
            let body = json!({"model": "chat", "max_tokens": 16, "stream": stream,
                              "messages": [{"role": "user", "content": "hi"}]});
            let a = h.call(caller, Operation::Chat, body).await;
            assert_eq!(a.status, 200, "{}", a.body);
            n += 1.0;
            let path = format!("{caller:?} caller, {dialect} backend, stream {stream}");
            // The caller reads the cache reads in its own dialect's usage field (an OpenAI
            // caller's stream has usage only when it asks for it).
            let reported = match caller {
                Dialect::Openai => "\"cached_tokens\":600",
                Dialect::Anthropic => "\"cache_read_input_tokens\":600",
            };
            if !(stream && caller == Dialect::Openai) {
                assert!(
                    a.body.replace(": ", ":").contains(reported),
                    "{path}: {}",
                    a.body
                );
            }
            let tokens = |t| {
                h.metric(
                    "switchyard_tokens_total",
                    &[("backend", "priced"), ("type", t)],
                )
            };
            assert_eq!(tokens("input"), n * USAGE.input as f64, "{path}");
            assert_eq!(tokens("cached_input"), n * USAGE.cached as f64, "{path}");
            assert_eq!(tokens("output"), n * USAGE.output as f64, "{path}");
            let cost = h.metric("switchyard_cost_total", &[("backend", "priced")]);
            assert!(
                (cost - n * per_answer).abs() < 1e-12,
                "{path}: cost {cost}, expected {}",
                n * per_answer
            );
        }
    }
}

/// Uncached input at the input price, cache reads at the cached price, output at its own.
#[tokio::test]
async fn cached_input_is_priced_apart_on_every_path() {
    let pricing = json!({"inputPerMillionTokens": "2.00", "cachedInputPerMillionTokens": "0.50",
                         "outputPerMillionTokens": "10.00"});
    let expected = (400.0 * 2.0 + 600.0 * 0.5 + 200.0 * 10.0) / 1e6;
    for dialect in ["openai", "anthropic"] {
        each_path_costs(dialect, pricing.clone(), expected).await;
    }
}

/// Without a cached price, cache reads cost what input costs.
#[tokio::test]
async fn cached_input_without_its_own_price_is_priced_as_input() {
    let pricing = json!({"inputPerMillionTokens": "2.00", "outputPerMillionTokens": "10.00"});
    let expected = (1000.0 * 2.0 + 200.0 * 10.0) / 1e6;
    for dialect in ["openai", "anthropic"] {
        each_path_costs(dialect, pricing.clone(), expected).await;
    }
}

/// A provider that prices total tokens: every token, whatever its kind, at one price.
#[tokio::test]
async fn total_token_pricing_prices_every_token_alike() {
    let pricing = json!({"totalPerMillionTokens": "0.60"});
    let expected = 1200.0 * 0.6 / 1e6;
    for dialect in ["openai", "anthropic"] {
        each_path_costs(dialect, pricing.clone(), expected).await;
    }
}
