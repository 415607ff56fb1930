//! Generative fuzzing on stable Rust (proptest): request validation (chat, embeddings,
//! legacy completions, token counts), translation both ways (requests, answers, streams),
//! the token estimate and the SSE parser, fed with mutations of the recorded wire
//! samples in `testdata/translate` (the seed corpus) and with arbitrary bytes. Properties:
//! nothing panics, and the SSE parser and the verbatim relay agree with themselves however a
//! stream is split. Each target runs for `FUZZ_SECONDS` (default 2, as `make test` runs it;
//! `e2e/fuzz.sh 300` runs longer by hand). Failures are saved in
//! `proptest-regressions/gateway-fuzz.txt` (commit it) and replayed first on every later run.

use std::time::{Duration, Instant};

use axum::body::Bytes;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};

use super::translate::sse::{SseParser, encode_into, verbatim_prefix};
use super::translate::{Operation, SseEvent, count, translator, translator_for};
use super::validate::validate;
use crate::api::Dialect;

const CORPUS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/translate");

/// Every file of the corpus whose name contains `kind` ("request", "response", "stream").
fn corpus(kind: &str) -> Vec<Vec<u8>> {
    let mut out = vec![];
    let mut dirs = vec![std::path::PathBuf::from(CORPUS_DIR)];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).expect("testdata/translate") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                dirs.push(p);
            } else if p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().contains(kind))
            {
                out.push(std::fs::read(&p).expect("corpus file"));
            }
        }
    }
    assert!(!out.is_empty(), "no corpus for {kind}");
    out
}

/// A corpus entry with a few byte-level mutations (overwrite, insert, delete, truncate), or
/// arbitrary bytes.
fn mutated(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let edits = prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 0..8);
    let from_seed = (prop::sample::select(seeds), edits).prop_map(|(mut b, edits)| {
        for (at, byte, op) in edits {
            if b.is_empty() {
                b.push(byte);
                continue;
            }
            let i = at.index(b.len());
            match op {
                0 => b[i] = byte,
                1 => b.insert(i, byte),
                2 => {
                    b.remove(i);
                }
                _ => b.truncate(i),
            }
        }
        b
    });
    prop_oneof![4 => from_seed, 1 => prop::collection::vec(any::<u8>(), 0..512)]
}

/// Runs `test` on values of `strategy` for `FUZZ_SECONDS`.
fn fuzz<S: Strategy>(name: &str, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let secs: f64 = std::env::var("FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut runs = 0u64;
    while Instant::now() < deadline {
        // A runner counts its successes and stops at `cases`: a fresh one (freshly seeded)
        // per batch keeps generating new inputs until the time is up.
        let mut runner = TestRunner::new(Config {
            cases: BATCH,
            failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/proptest-regressions/gateway-fuzz.txt"
            )))),
            ..Config::default()
        });
        if let Err(e) = runner.run(&strategy, &test) {
            panic!("fuzz target {name}: {e}");
        }
        runs += u64::from(BATCH);
    }
    eprintln!("fuzz target {name}: {runs} cases in {secs} s");
}

const BATCH: u32 = 256;

const DIALECTS: [Dialect; 2] = [Dialect::Openai, Dialect::Anthropic];

#[test]
fn requests_validate_and_translate_to_both_dialects_without_panicking() {
    fuzz("request", mutated(corpus("request")), |raw| {
        for caller in DIALECTS {
            let Ok(req) = validate(caller, Operation::Chat, Bytes::from(raw.clone())) else {
                continue;
            };
            for backend in DIALECTS {
                let t = translator(Operation::Chat, caller, backend);
                let _ = t.request(&req.raw, &req.spans, "model-x", req.stream);
            }
        }
        let _ = validate(
            Dialect::Openai,
            Operation::Embeddings,
            Bytes::from(raw.clone()),
        );
        // Legacy completions pass through to OpenAI-dialect backends; counts go to either.
        if let Ok(req) = validate(
            Dialect::Openai,
            Operation::Completions,
            Bytes::from(raw.clone()),
        ) {
            for backend in DIALECTS {
                let t = translator(Operation::Completions, Dialect::Openai, backend);
                let _ = t.request(&req.raw, &req.spans, "model-x", req.stream);
            }
        }
        if let Ok(req) = validate(Dialect::Anthropic, Operation::CountTokens, Bytes::from(raw)) {
            for backend in DIALECTS {
                let t = translator(Operation::CountTokens, Dialect::Anthropic, backend);
                let _ = t.request(&req.raw, &req.spans, "model-x", false);
            }
            if let Ok(v) = serde_json::from_slice(&req.raw) {
                let _ = count::estimate(&v);
            }
        }
        Ok(())
    });
}

#[test]
fn answers_translate_both_ways_without_panicking() {
    fuzz("response", mutated(corpus("response")), |raw| {
        for caller in DIALECTS {
            for backend in DIALECTS {
                let t = translator(Operation::Chat, caller, backend);
                let _ = t.response(raw.clone(), "model-x", 1);
            }
            for op in [Operation::Completions, Operation::CountTokens] {
                let _ = translator(op, caller, caller).response(raw.clone(), "model-x", 1);
            }
        }
        let _ = translator(Operation::CountTokens, Dialect::Anthropic, Dialect::Openai).response(
            raw.clone(),
            "model-x",
            1,
        );
        Ok(())
    });
}

/// The Responses API: requests validated and translated for every kind of backend; every
/// recorded answer and stream (Chat, Messages and the Responses API's own) through every
/// Responses pair, since each of them reads one of those.
#[test]
fn responses_requests_answers_and_streams_translate_without_panicking() {
    let pairs = || {
        [
            (Dialect::Openai, true),
            (Dialect::Openai, false),
            (Dialect::Anthropic, false),
        ]
        .map(|(b, native)| translator_for(Operation::Responses, Dialect::Openai, b, native))
    };
    fuzz("responses-request", mutated(corpus("request")), |raw| {
        if let Ok(req) = validate(Dialect::Openai, Operation::Responses, Bytes::from(raw)) {
            for t in pairs() {
                let _ = t.request(&req.raw, &req.spans, "model-x", req.stream);
            }
        }
        Ok(())
    });
    fuzz("responses-answer", mutated(corpus("response")), |raw| {
        for t in pairs() {
            let _ = t.response(raw.clone(), "model-x", 1);
        }
        Ok(())
    });
    fuzz("responses-stream", mutated(corpus("stream")), |raw| {
        let events = events_of(std::slice::from_ref(&raw));
        for t in pairs() {
            let mut s = t.stream("model-x", 1, true);
            let mut out = String::new();
            for ev in &events {
                if s.push(ev, &mut out).is_err() {
                    break;
                }
            }
        }
        Ok(())
    });
}

/// Splits `bytes` at the given points (as fractions of its length).
fn split(bytes: &[u8], cuts: &[prop::sample::Index]) -> Vec<Vec<u8>> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
    at.sort_unstable();
    let mut out = vec![];
    let mut from = 0;
    for a in at {
        out.push(bytes[from..a].to_vec());
        from = a;
    }
    out.push(bytes[from..].to_vec());
    out
}

fn events_of(chunks: &[Vec<u8>]) -> Vec<SseEvent> {
    let mut p = SseParser::new();
    let mut out: Vec<SseEvent> = chunks.iter().flat_map(|c| p.push(c)).collect();
    out.extend(p.finish());
    out
}

#[test]
fn streams_parse_the_same_however_split_and_translate_without_panicking() {
    let cuts = prop::collection::vec(any::<prop::sample::Index>(), 0..12);
    fuzz(
        "stream",
        (mutated(corpus("stream")), cuts),
        |(raw, cuts)| {
            let whole = events_of(std::slice::from_ref(&raw));
            prop_assert_eq!(&events_of(&split(&raw, &cuts)), &whole);
            for caller in DIALECTS {
                for backend in DIALECTS {
                    let mut s =
                        translator(Operation::Chat, caller, backend).stream("model-x", 1, true);
                    let mut out = String::new();
                    for ev in &whole {
                        if s.push(ev, &mut out).is_err() {
                            break;
                        }
                    }
                }
            }
            Ok(())
        },
    );
}

/// What the relay sends as it came must be exactly what parsing and re-encoding would send.
#[test]
fn the_verbatim_prefix_is_what_parsing_and_reencoding_would_send() {
    let cuts = prop::collection::vec(any::<prop::sample::Index>(), 0..6);
    fuzz(
        "verbatim",
        (mutated(corpus("stream")), cuts, any::<bool>()),
        |(raw, cuts, named)| {
            let mut p = SseParser::new();
            // The relay looks for a verbatim prefix only between events, once started.
            p.push(b": start\n");
            for chunk in split(&raw, &cuts) {
                if !p.is_idle() {
                    p.push(&chunk);
                    continue;
                }
                let n = verbatim_prefix(&chunk, &[], named).len();
                let mut again = String::new();
                let mut check = SseParser::new();
                check.push(b": start\n");
                for ev in check.push(&chunk[..n]) {
                    encode_into(&mut again, ev.event.as_deref(), &ev.data);
                }
                prop_assert!(check.is_idle() || n == 0);
                prop_assert_eq!(again.as_bytes(), &chunk[..n]);
                p.push(&chunk[n..]);
            }
            Ok(())
        },
    );
}
