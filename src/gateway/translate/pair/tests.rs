//! Every (caller, backend) pair against the recorded exchanges in `testdata/translate`:
//! `<dialect>-request.json` (with `STREAM` for the stream flag), `<dialect>-response.json`
//! and `<dialect>-stream.sse` are what a caller or backend of that dialect sends;
//! `<caller>-to-<backend>/` holds what the gateway must make of them. Same-dialect
//! expectations are compared byte for byte, translated ones as JSON.

use serde_json::Value;

use super::super::passthrough::{RequestFields, Spans, span_of};
use super::super::sse::SseParser;
use super::*;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/translate");
const MODEL: &str = "backend-model";
const CREATED: i64 = 1_700_000_000;
const DIALECTS: [Dialect; 2] = [Dialect::Openai, Dialect::Anthropic];

fn name(d: Dialect) -> &'static str {
    match d {
        Dialect::Openai => "openai",
        Dialect::Anthropic => "anthropic",
    }
}

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{DIR}/{path}")).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn spans(raw: &[u8]) -> Spans {
    let f: RequestFields<'_> = serde_json::from_slice(raw).unwrap();
    Spans {
        model: span_of(raw, f.model.unwrap()),
        stream_options: f.stream_options.map(|o| span_of(raw, o)),
    }
}

fn same(caller: Dialect, backend: Dialect, got: &[u8], want: &str, what: &str) {
    if caller == backend {
        assert_eq!(String::from_utf8_lossy(got), want, "{what}");
    } else {
        let got: Value = serde_json::from_slice(got).unwrap();
        let want: Value = serde_json::from_str(want).unwrap();
        assert_eq!(got, want, "{what}");
    }
}

#[test]
fn every_pair_translates_the_recorded_requests() {
    for caller in DIALECTS {
        for backend in DIALECTS {
            let t = translator(Operation::Chat, caller, backend);
            let dir = format!("{}-to-{}", name(caller), name(backend));
            for (stream, expected) in [
                (false, "upstream-request.json"),
                (true, "upstream-stream-request.json"),
            ] {
                let raw = read(&format!("{}-request.json", name(caller)))
                    .replace("STREAM", &stream.to_string());
                let raw = bytes::Bytes::from(raw);
                let got = t.request(&raw, &spans(&raw), MODEL, stream);
                let want = read(&format!("{dir}/{expected}"));
                same(
                    caller,
                    backend,
                    &got.unwrap().to_vec(),
                    &want,
                    &format!("{dir}/{expected}"),
                );
            }
        }
    }
}

#[test]
fn every_pair_translates_the_recorded_answers() {
    for caller in DIALECTS {
        for backend in DIALECTS {
            let t = translator(Operation::Chat, caller, backend);
            let dir = format!("{}-to-{}", name(caller), name(backend));
            let body = read(&format!("{}-response.json", name(backend)));
            let a = t.response(body.into_bytes(), MODEL, CREATED).unwrap();
            same(
                caller,
                backend,
                &a.body,
                &read(&format!("{dir}/response.json")),
                &dir,
            );
            assert_eq!(
                (a.usage.input, a.usage.output),
                (21 + u64::from(backend == Dialect::Anthropic) * 4, 6),
                "{dir}"
            );
        }
    }
}

#[test]
fn every_pair_relays_the_recorded_streams() {
    for caller in DIALECTS {
        for backend in DIALECTS {
            let mut s = translator(Operation::Chat, caller, backend).stream(MODEL, CREATED, true);
            let dir = format!("{}-to-{}", name(caller), name(backend));
            let mut out = String::new();
            let upstream = read(&format!("{}-stream.sse", name(backend)));
            for ev in SseParser::default().push(upstream.as_bytes()) {
                s.push(&ev, &mut out).unwrap();
            }
            assert!(s.done(), "{dir}: the stream ended properly");
            let u = s.usage();
            out.push_str(&format!("# usage {} {}\n", u.input, u.output));
            assert_eq!(out, read(&format!("{dir}/stream.sse")), "{dir}");
        }
    }
}

#[test]
fn an_answer_that_is_not_the_dialects_says_what_is_wrong() {
    for caller in DIALECTS {
        for backend in DIALECTS {
            let t = translator(Operation::Chat, caller, backend);
            let key = match backend {
                Dialect::Openai => "choices",
                Dialect::Anthropic => "content",
            };
            let e = t
                .response(br#"{"id": "x"}"#.to_vec(), MODEL, CREATED)
                .unwrap_err();
            assert_eq!(e, TranslateError::Malformed(format!("no '{key}' array")));
            let e = t
                .response(b"{\"id\": ".to_vec(), MODEL, CREATED)
                .unwrap_err();
            assert!(matches!(e, TranslateError::Malformed(m) if m.contains("EOF")));
        }
    }
}

#[test]
fn an_error_mid_stream_is_the_backends_message() {
    let openai_error = r#"{"error": {"message": "overloaded", "type": "server_error"}}"#;
    let anthropic_error =
        r#"{"type": "error", "error": {"type": "overloaded_error", "message": "overloaded"}}"#;
    for caller in DIALECTS {
        for backend in DIALECTS {
            let mut s = translator(Operation::Chat, caller, backend).stream(MODEL, CREATED, false);
            let ev = match backend {
                Dialect::Openai => SseEvent {
                    event: None,
                    data: openai_error.into(),
                },
                Dialect::Anthropic => SseEvent {
                    event: Some("error".into()),
                    data: anthropic_error.into(),
                },
            };
            let e = s.push(&ev, &mut String::new()).unwrap_err();
            assert!(
                matches!(&e, TranslateError::Upstream(m) if m.starts_with("overloaded")),
                "{caller:?} <- {backend:?}: {e:?}"
            );
        }
    }
}

#[test]
fn embeddings_pass_through_whatever_the_caller() {
    let raw = bytes::Bytes::from_static(br#"{"input": ["a"], "model": "e"}"#);
    let t = translator(Operation::Embeddings, Dialect::Openai, Dialect::Openai);
    let up = t.request(&raw, &spans(&raw), MODEL, false).unwrap();
    assert_eq!(
        up.to_vec(),
        br#"{"input": ["a"], "model": "backend-model"}"#
    );
    let answer = br#"{"data": [{"embedding": [0.1]}], "usage": {"prompt_tokens": 2}}"#.to_vec();
    let a = t.response(answer.clone(), MODEL, CREATED).unwrap();
    assert_eq!((a.body, a.usage.input), (answer, 2));
}
