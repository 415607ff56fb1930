//! Server-sent events: an incremental parser for upstream streams and an encoder for the
//! streams the gateway writes.
//!
//! Network reads split events anywhere (even inside a UTF-8 character or between `\r` and
//! `\n`), so the parser buffers bytes and only decodes complete lines. It follows the WHATWG
//! event-stream rules for what the gateway needs: `event` and `data` fields, multi-line data,
//! comments, and `\n`, `\r\n` or `\r` line endings. `id` and `retry` are ignored because
//! neither dialect uses them.

/// One dispatched event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, if the event had one.
    pub event: Option<String>,
    /// All `data:` lines of the event joined with `\n`.
    pub data: String,
}

/// The longest line an upstream may send, and the largest event (all its data lines): a
/// stream that never ends a line would otherwise grow the gateway's memory without bound.
/// Generous for real streams, whose events are a few hundred bytes (a large tool-call
/// argument delta stays well under).
pub const MAX_LINE: usize = 1 << 20;
pub const MAX_EVENT: usize = 4 << 20;

/// The leading complete events of `chunk` that a same-dialect relay would re-encode byte for
/// byte, so they can go to the caller as they came: each event one optional `event: ` line
/// (only when `named`), one `data: {` line and the blank line, with `\n` line endings, valid
/// UTF-8 (the parser would replace invalid bytes), and none of `markers` in it. Stops before
/// the first event that contains a marker or any other shape; empty when the first event is
/// such. The parser must be idle (between events) for the prefix to start an event.
pub fn verbatim_prefix<'a>(chunk: &'a [u8], markers: &[&[u8]], named: bool) -> &'a str {
    std::str::from_utf8(&chunk[..verbatim_len(chunk, markers, named)]).unwrap_or_default()
}

fn verbatim_len(chunk: &[u8], markers: &[&[u8]], named: bool) -> usize {
    let stop = markers
        .iter()
        .filter_map(|m| memchr::memmem::find(chunk, m))
        .min()
        .unwrap_or(chunk.len());
    let mut at = 0;
    let mut end = 0;
    while at < stop {
        let mut i = at;
        if named && chunk[i..].starts_with(b"event: ") {
            match memchr::memchr2(b'\n', b'\r', &chunk[i..]) {
                Some(n) if chunk[i + n] == b'\n' => i += n + 1,
                _ => break,
            }
        }
        if !chunk[i..].starts_with(b"data: {") {
            break;
        }
        match memchr::memchr2(b'\n', b'\r', &chunk[i..]) {
            Some(n) if chunk[i + n] == b'\n' && chunk.get(i + n + 1) == Some(&b'\n') => {
                i += n + 2;
            }
            _ => break,
        }
        if i > stop {
            break;
        }
        at = i;
        end = i;
    }
    end
}

/// Incremental SSE parser: feed it chunks as they arrive, get complete events back.
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes of the current, not yet terminated line.
    line: Vec<u8>,
    /// The previous chunk ended in `\r`: a `\n` starting the next chunk belongs to that line
    /// ending and must not produce an empty line (which would dispatch an event early).
    after_cr: bool,
    /// Whether the first line has been seen (a leading byte-order mark is dropped).
    started: bool,
    /// The event being read: its `data` lines so far, and its name once dispatched. Its
    /// buffers are reused from event to event, so a stream's events cost no allocation each.
    current: SseEvent,
    /// The `event:` field of the event being read (kept apart so its buffer is reused too).
    name: String,
    named: bool,
    has_data: bool,
    /// A line or event went past its cap: the stream is refused (see `too_large`).
    too_large: bool,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Consumes a chunk of the stream and returns the events it completed, in order.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        let _ = self.push_each(chunk, |ev| {
            events.push(ev.clone());
            Ok::<(), std::convert::Infallible>(())
        });
        events
    }

    /// Consumes a chunk of the stream and hands each event it completes to `f`, in order,
    /// without copying it. The first error stops the parse and is returned: the stream is
    /// over then, and the rest of the chunk is dropped.
    pub fn push_each<E>(
        &mut self,
        chunk: &[u8],
        mut f: impl FnMut(&SseEvent) -> Result<(), E>,
    ) -> Result<(), E> {
        if self.too_large {
            return Ok(());
        }
        let mut rest = chunk;
        if self.after_cr {
            self.after_cr = false;
            if let Some(tail) = rest.strip_prefix(b"\n") {
                rest = tail;
            }
        }
        while let Some(pos) = memchr::memchr2(b'\n', b'\r', rest) {
            // A line within one chunk is read in place; only a line split across reads is
            // copied (and its buffer kept for the next one).
            let dispatched = if self.line.is_empty() {
                self.process_line(&rest[..pos])
            } else {
                self.line.extend_from_slice(&rest[..pos]);
                let line = std::mem::take(&mut self.line);
                let dispatched = self.process_line(&line);
                self.line = line;
                self.line.clear();
                dispatched
            };
            if dispatched {
                let result = f(&self.current);
                self.reset();
                result?;
            }
            if rest[pos] == b'\r' {
                match rest.get(pos + 1) {
                    Some(b'\n') => rest = &rest[pos + 2..],
                    Some(_) => rest = &rest[pos + 1..],
                    None => {
                        self.after_cr = true;
                        rest = &[];
                    }
                }
            } else {
                rest = &rest[pos + 1..];
            }
        }
        if self.line.len() + rest.len() > MAX_LINE || self.current.data.len() > MAX_EVENT {
            self.too_large = true;
            self.line = Vec::new();
            self.current = SseEvent::default();
            return Ok(());
        }
        self.line.extend_from_slice(rest);
        Ok(())
    }

    /// Whether the parser is between events: no partial line, field or line ending held, so
    /// the next bytes start a new event.
    pub fn is_idle(&self) -> bool {
        self.started
            && self.line.is_empty()
            && !self.after_cr
            && !self.has_data
            && !self.named
            && !self.too_large
    }

    /// Whether the upstream sent a line longer than [`MAX_LINE`] or an event larger than
    /// [`MAX_EVENT`]; the parser then stops and holds nothing more.
    pub fn too_large(&self) -> bool {
        self.too_large
    }

    /// Ends the stream. The event-stream rules discard an event that was not terminated by a
    /// blank line, but some servers omit the last one, so an event with data is returned here.
    pub fn finish(&mut self) -> Option<SseEvent> {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            // A final line without its newline still carries a field.
            let _ = self.process_line(&line);
        }
        self.after_cr = false;
        let ev = self.dispatch().then(|| self.current.clone());
        self.reset();
        ev
    }

    /// Reads one line; `true` when it ended an event, which `current` then holds.
    fn process_line(&mut self, raw: &[u8]) -> bool {
        // Valid UTF-8 (the usual case) is checked by the fast validator and borrowed.
        let mut line = match std::str::from_utf8(raw) {
            Ok(s) => std::borrow::Cow::Borrowed(s),
            Err(_) => String::from_utf8_lossy(raw),
        };
        if !self.started {
            self.started = true;
            if let Some(stripped) = line.strip_prefix('\u{feff}') {
                line = stripped.to_owned().into();
            }
        }
        if line.is_empty() {
            return self.dispatch();
        }
        if line.starts_with(':') {
            return false;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line.as_ref(), ""),
        };
        match field {
            "event" => {
                self.name.clear();
                self.name.push_str(value);
                self.named = true;
            }
            "data" => {
                if self.has_data {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(value);
                self.has_data = true;
            }
            _ => {}
        }
        false
    }

    /// At a blank line: whether an event is complete (it has data); `current` then carries
    /// its name. Without data the name is dropped, as the event-stream rules say.
    fn dispatch(&mut self) -> bool {
        if !self.has_data {
            self.named = false;
            self.name.clear();
            return false;
        }
        if self.named && !self.name.is_empty() {
            self.current.event = Some(std::mem::take(&mut self.name));
        }
        true
    }

    /// Ready for the next event, keeping the buffers.
    fn reset(&mut self) {
        if let Some(name) = self.current.event.take() {
            self.name = name;
        }
        self.name.clear();
        self.named = false;
        self.current.data.clear();
        self.has_data = false;
    }
}

/// Encodes one event: `event: <name>\n` (omitted when `None`), one `data:` line per line of
/// `data`, and the blank line that dispatches it.
pub fn encode(event: Option<&str>, data: &str) -> String {
    let mut out = String::with_capacity(data.len() + 32);
    encode_into(&mut out, event, data);
    out
}

/// `encode`, appended to `out`: a stream's frames of one read share one buffer and one write.
pub fn encode_into(out: &mut String, event: Option<&str>, data: &str) {
    if let Some(name) = event {
        out.push_str("event: ");
        // A line break in the name would end the field early and corrupt the stream.
        out.extend(name.chars().filter(|c| *c != '\n' && *c != '\r'));
        out.push('\n');
    }
    // Almost every event is one line of JSON: no need to split it.
    if memchr::memchr2(b'\n', b'\r', data.as_bytes()).is_none() {
        out.reserve(data.len() + 8);
        out.push_str("data: ");
        out.push_str(data);
        out.push_str("\n\n");
        return;
    }
    for line in data.split("\r\n").flat_map(|l| l.split(['\n', '\r'])) {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {

    fn vlen(chunk: &[u8], markers: &[&[u8]], named: bool) -> usize {
        verbatim_prefix(chunk, markers, named).len()
    }

    #[test]
    fn a_verbatim_prefix_is_whole_plain_events_before_the_first_marked_one() {
        let markers: &[&[u8]] = &[b"\"usage\"", b"[DONE]"];
        let a = "data: {\"a\":1}\n\n";
        let b = "data: {\"b\":2}\n\n";
        let usage = "data: {\"usage\":{}}\n\n";
        let chunk = format!("{a}{b}{usage}data: [DONE]\n\n");
        assert_eq!(vlen(chunk.as_bytes(), markers, false), a.len() + b.len());
        // An incomplete last event stays with the parser.
        let cut = format!("{a}{b}data: {{\"c\"");
        assert_eq!(vlen(cut.as_bytes(), markers, false), a.len() + b.len());
        // Anything but the canonical framing is left to the parser from there on.
        for odd in [
            format!("{a}data: {{\"b\":2}}\r\n\r\n{b}"),
            format!("{a}: comment\n\n{b}"),
            format!("{a}data:{{\"b\":2}}\n\n"),
            format!("{a}event: x\ndata: {{}}\n\n"),
            format!("{a}data: {{}}\ndata: {{}}\n\n"),
            format!("{a}\n{b}"),
        ] {
            assert_eq!(vlen(odd.as_bytes(), markers, false), a.len(), "{odd:?}");
        }
        // Named events, when the relay keeps their names.
        let named = "event: content_block_delta\ndata: {\"d\":1}\n\n";
        let stop = "event: message_delta\ndata: {\"usage\":{}}\n\n";
        let chunk = format!("{named}{named}{stop}");
        assert_eq!(
            vlen(chunk.as_bytes(), &[b"message_delta"], true),
            2 * named.len()
        );
        assert_eq!(vlen(chunk.as_bytes(), &[b"message_delta"], false), 0);
        // What it passes is what the parser and the encoder would have made of it.
        let chunk = format!("{a}{b}{named}");
        assert_eq!(verbatim_prefix(chunk.as_bytes(), &[], true), chunk);
        // Invalid UTF-8, which the parser would replace, is left to it.
        assert_eq!(verbatim_prefix(b"data: {\xff}\n\n", &[], false), "");
        let mut p = SseParser::new();
        let mut out = String::new();
        for ev in p.push(chunk.as_bytes()) {
            encode_into(&mut out, ev.event.as_deref(), &ev.data);
        }
        assert_eq!(out, chunk);
        assert!(p.is_idle());
    }

    #[test]
    fn a_line_or_event_past_its_cap_stops_the_parser_and_frees_its_buffers() {
        let mut p = SseParser::new();
        let chunk = vec![b'x'; 64 * 1024];
        p.push(b"data: ");
        for _ in 0..(MAX_LINE / chunk.len()) {
            p.push(&chunk);
        }
        assert!(p.too_large());
        assert!(p.line.capacity() == 0 && p.current.data.capacity() == 0);
        assert!(p.push(b"\n\ndata: late\n\n").is_empty(), "nothing after");

        // Many short data lines of one event.
        let mut p = SseParser::new();
        let line = format!("data: {}\n", "y".repeat(1000));
        for _ in 0..(MAX_EVENT / 1000 + 2) {
            p.push(line.as_bytes());
        }
        assert!(p.too_large());
        // Ordinary streams are far from either.
        let mut p = SseParser::new();
        assert_eq!(p.push(b"data: {\"a\":1}\n\n").len(), 1);
        assert!(!p.too_large());
    }

    use super::*;

    fn ev(event: Option<&str>, data: &str) -> SseEvent {
        SseEvent {
            event: event.map(str::to_owned),
            data: data.to_owned(),
        }
    }

    const SAMPLE: &str = concat!(
        ": keep-alive comment\n",
        "event: message_start\n",
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\"}}\n",
        "\n",
        "event: content_block_delta\r\n",
        "data: {\"type\":\"content_block_delta\",\"text\":\"héllo → ✓\"}\r\n",
        "\r\n",
        "data: line one\n",
        "data:line two\n",
        "data:  indented\n",
        "id: 7\n",
        "retry: 100\n",
        "\n",
        "event: ping\n",
        "data: \n",
        "\n",
        "data: [DONE]\n",
        "\n",
    );

    fn expected() -> Vec<SseEvent> {
        vec![
            ev(
                Some("message_start"),
                r#"{"type":"message_start","message":{"id":"msg_1"}}"#,
            ),
            ev(
                Some("content_block_delta"),
                r#"{"type":"content_block_delta","text":"héllo → ✓"}"#,
            ),
            ev(None, "line one\nline two\n indented"),
            ev(Some("ping"), ""),
            ev(None, "[DONE]"),
        ]
    }

    #[test]
    fn parses_whole_stream() {
        let mut p = SseParser::new();
        assert_eq!(p.push(SAMPLE.as_bytes()), expected());
        assert_eq!(p.finish(), None);
    }

    #[test]
    fn parses_split_at_every_byte_boundary() {
        let bytes = SAMPLE.as_bytes();
        for cut in 0..=bytes.len() {
            let mut p = SseParser::new();
            let mut got = p.push(&bytes[..cut]);
            got.extend(p.push(&bytes[cut..]));
            assert_eq!(got, expected(), "split at byte {cut}");
        }
    }

    #[test]
    fn parses_one_byte_at_a_time() {
        let mut p = SseParser::new();
        let got: Vec<SseEvent> = SAMPLE
            .as_bytes()
            .iter()
            .flat_map(|b| p.push(&[*b]))
            .collect();
        assert_eq!(got, expected());
    }

    #[test]
    fn lone_carriage_returns_end_lines() {
        let mut p = SseParser::new();
        let got = p.push(b"event: a\rdata: 1\r\rdata: 2\r");
        assert_eq!(got, vec![ev(Some("a"), "1")]);
        // The `\n` after a chunk-final `\r` is part of the same line ending.
        assert_eq!(p.push(b"\n\n"), vec![ev(None, "2")]);
    }

    #[test]
    fn event_without_data_is_not_dispatched() {
        let mut p = SseParser::new();
        assert!(p.push(b"event: lonely\n\n").is_empty());
        // ...and its name does not leak into the next event.
        assert_eq!(p.push(b"data: x\n\n"), vec![ev(None, "x")]);
    }

    #[test]
    fn byte_order_mark_is_dropped() {
        let mut p = SseParser::new();
        assert_eq!(
            p.push("\u{feff}data: x\n\n".as_bytes()),
            vec![ev(None, "x")]
        );
    }

    #[test]
    fn finish_flushes_unterminated_event() {
        let mut p = SseParser::new();
        assert!(p.push(b"event: e\ndata: tail").is_empty());
        assert_eq!(p.finish(), Some(ev(Some("e"), "tail")));
        assert_eq!(p.finish(), None);
    }

    #[test]
    fn encode_shapes() {
        assert_eq!(encode(Some("ping"), "{}"), "event: ping\ndata: {}\n\n");
        assert_eq!(encode(None, "[DONE]"), "data: [DONE]\n\n");
        assert_eq!(encode(None, "a\nb\r\nc"), "data: a\ndata: b\ndata: c\n\n");
        assert_eq!(encode(Some("x\ny"), "1"), "event: xy\ndata: 1\n\n");
    }

    #[test]
    fn encode_then_parse_round_trips() {
        let mut p = SseParser::new();
        let mut wire = encode(Some("message_delta"), "{\"a\":1}\nsecond");
        wire.push_str(&encode(None, ""));
        assert_eq!(
            p.push(wire.as_bytes()),
            vec![ev(Some("message_delta"), "{\"a\":1}\nsecond"), ev(None, "")]
        );
    }
}
