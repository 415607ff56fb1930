//! The common event of a translated stream, a text delta, written straight to the caller's
//! frame: a typed borrowed parse of the upstream event and the frame around the text
//! rendered once. Building both as `Value` trees cost about 2.5 µs per chunk, most of a
//! translated stream's CPU. Anything else (the first chunk, tool calls, finishes, usage,
//! errors, unknown shapes) returns `None` and takes the general path, so the bytes written
//! here must equal what that path writes for the same event (`testdata/translate` and the
//! tests below hold them to it).
//!
//! Even the typed parse is most of what is left (serde_json ~45% of a translated stream's
//! user-space CPU), and an upstream's text deltas differ from one another only in their text:
//! `{"id":"…","choices":[{"index":0,"delta":{"content":"` + text + `"},…}]}`. So the bytes
//! around the text of a delta that the typed parse accepted are kept as its `Shape`, and a
//! later event with the same bytes around a plain string (no quote, backslash or control
//! character, so the string cannot end early or mean anything else) is the same delta with
//! another text: it is written without being parsed. Anything else is parsed as before.

use std::borrow::Cow;
use std::fmt::Write as _;

use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};

use super::{AnthropicToOpenAi, OpenAiToAnthropic, OpenBlock};
use crate::gateway::translate::sse::SseEvent;

/// An Anthropic `content_block_delta` event, as far as a text delta needs.
#[derive(Deserialize)]
struct BlockDelta<'a> {
    #[serde(rename = "type", borrow, default, deserialize_with = "borrowed")]
    ty: Option<Cow<'a, str>>,
    #[serde(borrow)]
    delta: Option<TextDelta<'a>>,
}

#[derive(Deserialize)]
struct TextDelta<'a> {
    #[serde(rename = "type", borrow, default, deserialize_with = "borrowed")]
    ty: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    text: Option<Cow<'a, str>>,
}

/// An OpenAI chunk: only a plain content delta of choice 0 is taken here. `choices` is read
/// as exactly one element (no vector to allocate); any other count fails the parse and
/// takes the general path.
#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(borrow)]
    choices: Option<[Choice<'a>; 1]>,
    usage: Option<IgnoredAny>,
    error: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    index: Option<u64>,
    #[serde(borrow)]
    delta: Option<ContentDelta<'a>>,
    finish_reason: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct ContentDelta<'a> {
    #[serde(borrow, default, deserialize_with = "borrowed")]
    content: Option<Cow<'a, str>>,
    refusal: Option<IgnoredAny>,
    tool_calls: Option<IgnoredAny>,
    function_call: Option<IgnoredAny>,
    /// Reasoning text (see `translate::reasoning`) takes the general path.
    reasoning_content: Option<IgnoredAny>,
    reasoning: Option<IgnoredAny>,
}

/// An optional string borrowed from the input when it has no escape. serde borrows a `Cow`
/// only when it is the field's whole type: inside `Option` it always allocates.
fn borrowed<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'a, str>>, D::Error> {
    #[derive(Deserialize)]
    struct Borrowed<'a>(#[serde(borrow)] Cow<'a, str>);
    Ok(Option::<Borrowed<'a>>::deserialize(d)?.map(|b| b.0))
}

/// The bytes before and after the text of a text delta the typed parse accepted.
#[derive(Debug, Clone)]
pub(super) struct Shape {
    prefix: Box<str>,
    suffix: Box<str>,
}

impl Shape {
    /// The shape of `data` around `text`, when `text` is the raw string in `data` (borrowed
    /// by the parse, so it had no escape) between its quotes.
    fn learn(data: &str, text: &str) -> Option<Self> {
        let start = (text.as_ptr() as usize).checked_sub(data.as_ptr() as usize)?;
        let end = start.checked_add(text.len())?;
        let (prefix, suffix) = (data.get(..start)?, data.get(end..)?);
        if !prefix.ends_with('"') || !suffix.starts_with('"') {
            return None;
        }
        Some(Self {
            prefix: prefix.into(),
            suffix: suffix.into(),
        })
    }

    /// The text of `data` if it is this shape around a plain, non-empty string.
    fn text<'a>(&self, data: &'a str) -> Option<&'a str> {
        let text = data
            .strip_prefix(&*self.prefix)?
            .strip_suffix(&*self.suffix)?;
        let plain = !text.is_empty() && text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\');
        plain.then_some(text)
    }
}

/// The text of a text delta, from its shape when it has the known one, else from the typed
/// parse `parse` (learning the shape when the text came unescaped).
fn shaped_text<'a>(
    shape: &mut Option<Shape>,
    data: &'a str,
    parse: impl FnOnce(&'a str) -> Option<Cow<'a, str>>,
) -> Option<Cow<'a, str>> {
    if let Some(text) = shape.as_ref().and_then(|s| s.text(data)) {
        return Some(Cow::Borrowed(text));
    }
    let text = parse(data)?;
    if let Cow::Borrowed(t) = text {
        *shape = Shape::learn(data, t);
    }
    Some(text)
}

/// `text` as a JSON string.
fn json_str(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    push_json_str(&mut out, text);
    out
}

/// Appends `text` as a JSON string, escaped exactly as serde_json escapes it (`"`, `\\` and
/// control characters; everything else as it is), without a buffer of its own.
fn push_json_str(out: &mut String, text: &str) {
    out.push('"');
    let bytes = text.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        // Escaped bytes are ASCII, so `i` is a character boundary.
        out.push_str(&text[start..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 0xf) as usize] as char);
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&text[start..]);
    out.push('"');
}

impl AnthropicToOpenAi {
    /// Writes the OpenAI chunk for a text delta into `out`, framed as a server-sent event;
    /// `false` (nothing written): not one, or the role still has to be sent.
    pub fn text_fast(&mut self, ev: &SseEvent, out: &mut String) -> bool {
        self.text_delta(ev, out).is_some()
    }

    fn text_delta(&mut self, ev: &SseEvent, out: &mut String) -> Option<()> {
        if self.finished || !self.role_sent || ev.event.as_deref() != Some("content_block_delta") {
            return None;
        }
        let text = shaped_text(&mut self.shape, &ev.data, |data| {
            let d: BlockDelta<'_> = serde_json::from_str(data).ok()?;
            let delta = d.delta?;
            if d.ty.as_deref() != Some("content_block_delta")
                || delta.ty.as_deref() != Some("text_delta")
            {
                return None;
            }
            delta.text.filter(|t| !t.is_empty())
        })?;
        // Keys in the order the general path's `Value` writes them (sorted).
        let tail = self.chunk_tail.get_or_insert_with(|| {
            let usage = if self.include_usage {
                ",\"usage\":null"
            } else {
                ""
            };
            format!(
                "}},\"finish_reason\":null,\"index\":0,\"logprobs\":null}}],\"created\":{},\"id\":{},\"model\":{},\"object\":\"chat.completion.chunk\"{usage}}}",
                self.created,
                json_str(&self.id),
                json_str(&self.model),
            )
        });
        out.reserve(text.len() + tail.len() + 48);
        out.push_str("data: {\"choices\":[{\"delta\":{\"content\":");
        push_json_str(out, &text);
        out.push_str(tail);
        out.push_str("\n\n");
        Some(())
    }
}

impl OpenAiToAnthropic {
    /// Writes the Anthropic `content_block_delta` event for a chunk that only continues the
    /// open text block into `out`; `false` (nothing written) for anything else.
    pub fn text_fast(&mut self, data: &str, out: &mut String) -> bool {
        self.text_delta(data, out).is_some()
    }

    fn text_delta(&mut self, data: &str, out: &mut String) -> Option<()> {
        let Some(OpenBlock::Text { block }) = self.open else {
            return None;
        };
        if self.stopped || self.failed || !self.started {
            return None;
        }
        let text = shaped_text(&mut self.shape, data, |data| {
            let chunk: Chunk<'_> = serde_json::from_str(data).ok()?;
            if chunk.usage.is_some() || chunk.error.is_some() {
                return None;
            }
            let [choice] = chunk.choices?;
            let delta = choice.delta?;
            if choice.index.unwrap_or(0) != 0
                || choice.finish_reason.is_some()
                || delta.refusal.is_some()
                || delta.tool_calls.is_some()
                || delta.function_call.is_some()
                || delta.reasoning_content.is_some()
                || delta.reasoning.is_some()
            {
                return None;
            }
            delta.content.filter(|t| !t.is_empty())
        })?;
        out.reserve(text.len() + 128);
        out.push_str("event: content_block_delta\ndata: {\"delta\":{\"text\":");
        push_json_str(out, &text);
        let _ = write!(
            out,
            ",\"type\":\"text_delta\"}},\"index\":{block},\"type\":\"content_block_delta\"}}\n\n"
        );
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::gateway::translate::sse::encode_into;

    fn ev(event: &str, data: Value) -> SseEvent {
        SseEvent {
            event: Some(event.into()),
            data: data.to_string(),
        }
    }

    /// What the general path makes of the same event, on a converter in the same state.
    fn general_anthropic(c: &AnthropicToOpenAi, e: &SseEvent) -> String {
        let mut twin = c.clone();
        let mut out = String::new();
        encode_into(&mut out, None, &twin.push(e).unwrap()[0].to_string());
        out
    }

    fn fast_anthropic(c: &mut AnthropicToOpenAi, e: &SseEvent) -> Option<String> {
        let mut out = String::new();
        c.text_fast(e, &mut out).then_some(out)
    }

    fn fast_openai(c: &mut OpenAiToAnthropic, data: &str) -> Option<String> {
        let mut out = String::new();
        c.text_fast(data, &mut out).then_some(out)
    }

    /// Every character that needs escaping, and some that do not, escape as serde_json does.
    #[test]
    fn strings_escape_as_serde_json_escapes_them() {
        let all: String = (0u32..0x80)
            .filter_map(char::from_u32)
            .chain("é😀\u{2028}/".chars())
            .collect();
        for s in [all.as_str(), "", "plain", "\"", "a\\b", "\u{1}x\u{1f}"] {
            assert_eq!(json_str(s), serde_json::to_string(s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn a_shape_is_the_bytes_around_a_plain_text_and_matches_only_those() {
        let data = r#"{"choices":[{"delta":{"content":"Hi"},"index":0}],"id":"c"}"#;
        let text = &data[data.find("Hi").unwrap()..][..2];
        let shape = Shape::learn(data, text).unwrap();
        let with = |t: &str| {
            format!(r#"{{"choices":[{{"delta":{{"content":"{t}"}},"index":0}}],"id":"c"}}"#)
        };
        assert_eq!(shape.text(&with("there é😀 /")), Some("there é😀 /"));
        // A quote or backslash could end the string early or escape something; a control
        // character is not JSON; an empty text is not a delta: all are left to the parse.
        for t in [
            r#"a\"b"#,
            r#"a\\b"#,
            r#"\n"#,
            "a\u{1}b",
            "",
            r#"x","refusal":"no"#,
        ] {
            assert_eq!(shape.text(&with(t)), None, "{t:?}");
        }
        assert_eq!(
            shape.text(r#"{"choices":[{"delta":{"content":"Hi"},"index":1}],"id":"c"}"#),
            None
        );
        assert_eq!(shape.text(r#"{"choices":[{"delta":{"content":"Hi"}"#), None);
        // A text that is not the raw string between quotes teaches nothing.
        assert!(Shape::learn(data, &data[..3]).is_none());
        assert!(Shape::learn(data, "Hi").is_none(), "not borrowed from data");
    }

    /// Deltas after the first, whose shape is then known, still come out byte for byte as
    /// the general path writes them, and those that differ in anything but a plain text
    /// still take it.
    #[test]
    fn deltas_of_a_known_shape_come_out_as_the_general_path_writes_them() {
        let mut c = OpenAiToAnthropic::new("m");
        let chunk = |delta: Value, finish: Value| json!({"id": "c", "model": "u", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        c.push(&chunk(
            json!({"role": "assistant", "content": "Hi"}),
            Value::Null,
        ));
        for (text, finish, fast) in [
            ("first", Value::Null, true),
            ("second, by shape", Value::Null, true),
            ("a \"quote\"", Value::Null, true),
            ("after the escape", Value::Null, true),
            ("last", json!("stop"), false),
        ] {
            let next = chunk(json!({ "content": text }), finish);
            let mut twin = c.clone();
            let general: String = twin
                .push(&next)
                .into_iter()
                .map(|(name, v)| {
                    let mut framed = String::new();
                    encode_into(&mut framed, Some(&name), &v.to_string());
                    framed
                })
                .collect();
            let got = fast_openai(&mut c, &next.to_string());
            if fast {
                assert_eq!(got, Some(general), "{text}");
                assert!(c.shape.is_some());
            } else {
                assert_eq!(got, None, "{text}");
            }
        }

        let mut a = AnthropicToOpenAi::new("m", 7, false);
        a.push(&ev(
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_1"}}),
        ))
        .unwrap();
        for text in ["one", "two", "t\u{1}hree", "four", ""] {
            let delta = ev(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}),
            );
            let want = (!text.is_empty()).then(|| general_anthropic(&a, &delta));
            assert_eq!(fast_anthropic(&mut a, &delta), want, "{text:?}");
        }
        assert!(a.shape.is_some());
    }

    #[test]
    fn a_text_delta_becomes_the_same_openai_chunk_either_way() {
        for include_usage in [false, true] {
            let mut c = AnthropicToOpenAi::new("m\"odel", 7, include_usage);
            let start = json!({"type": "message_start", "message": {"id": "msg_\u{e9}", "usage": {"input_tokens": 3}}});
            let delta = ev(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "a \"quoted\"\nline \u{1F600}"}}),
            );
            assert_eq!(
                fast_anthropic(&mut c, &delta),
                None,
                "the role goes out first"
            );
            c.push(&ev("message_start", start)).unwrap();
            let want = general_anthropic(&c, &delta);
            assert_eq!(fast_anthropic(&mut c, &delta), Some(want));
        }
    }

    #[test]
    fn anything_but_a_text_delta_takes_the_general_path() {
        let mut c = AnthropicToOpenAi::new("m", 7, false);
        c.push(&ev(
            "message_start",
            json!({"type": "message_start", "message": {"id": "x"}}),
        ))
        .unwrap();
        let tool = json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{"}});
        assert_eq!(
            fast_anthropic(&mut c, &ev("content_block_delta", tool)),
            None
        );
        let empty = json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": ""}});
        assert_eq!(
            fast_anthropic(&mut c, &ev("content_block_delta", empty)),
            None
        );
        let stop = json!({"type": "message_stop"});
        assert_eq!(fast_anthropic(&mut c, &ev("message_stop", stop)), None);
    }

    #[test]
    fn a_content_chunk_becomes_the_same_anthropic_delta_either_way() {
        let mut c = OpenAiToAnthropic::new("m");
        let chunk = |delta: Value, finish: Value| json!({"id": "c", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        let first = chunk(json!({"role": "assistant", "content": "Hi"}), Value::Null);
        assert_eq!(
            fast_openai(&mut c, &first.to_string()),
            None,
            "no block is open yet"
        );
        c.push(&first);
        let next = chunk(json!({"content": "a \"b\"\n\u{1F600}"}), Value::Null);
        let mut twin = c.clone();
        let (name, want) = twin.push(&next).remove(0);
        let mut framed = String::new();
        encode_into(&mut framed, Some(&name), &want.to_string());
        assert_eq!(fast_openai(&mut c, &next.to_string()), Some(framed));

        for other in [
            chunk(json!({"content": "x"}), json!("stop")),
            chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "{"}}]}),
                Value::Null,
            ),
            chunk(json!({"content": "x", "refusal": "no"}), Value::Null),
            json!({"id": "c", "choices": [], "usage": {"prompt_tokens": 1}}),
            json!({"id": "c", "choices": [{"index": 0, "delta": {"content": "x"}}, {"index": 1, "delta": {"content": "y"}}]}),
            json!({"error": {"message": "boom"}}),
        ] {
            assert_eq!(fast_openai(&mut c, &other.to_string()), None, "{other}");
        }
    }
}
