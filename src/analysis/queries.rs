//! The PromQL the analysis sends: selectors over the gateway's per-attempt metrics, with every
//! label value escaped, and the placeholders of custom checks.
//!
//! The metric names and labels are the ones `gateway::metrics` exports; a typo here would make
//! every check inconclusive for lack of data, so the tests pin each query verbatim.

use std::time::Duration;

const REQUESTS: &str = "switchyard_requests_total";
const DURATION_COUNT: &str = "switchyard_request_duration_seconds_count";
const DURATION_BUCKET: &str = "switchyard_request_duration_seconds_bucket";
const TOKENS: &str = "switchyard_tokens_total";
const TTFT_BUCKET: &str = "switchyard_time_to_first_token_seconds_bucket";

/// A duration as a PromQL range: whole seconds as `60s`, anything finer as `1500ms`.
pub fn render_window(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// Escapes text for use inside a double-quoted PromQL string literal.
pub(crate) fn escape_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str(r"\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str(r"\n"),
            '\r' => out.push_str(r"\r"),
            '\t' => out.push_str(r"\t"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes the metacharacters of an RE2 regular expression, so a name matches only itself.
pub(crate) fn escape_regex(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if r"\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The names as an RE2 alternation (`a|b`) matching exactly those names (Prometheus anchors
/// label regexes at both ends). Not yet escaped for a string literal.
pub(crate) fn alternation(names: &[String]) -> String {
    names
        .iter()
        .map(|n| escape_regex(n))
        .collect::<Vec<_>>()
        .join("|")
}

/// Which traffic a query looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Traffic {
    /// Attempts to serve clients, except those rejected as the caller's own mistake.
    Live,
    /// The mirrored copies (`outcome="shadow"`).
    Shadow,
}

/// Builds the queries of one analysis: one route, a set of backends, one window.
pub(crate) struct Queries {
    namespace: String,
    route: String,
    window: String,
}

impl Queries {
    pub(crate) fn new(namespace: &str, route: &str, window: Duration) -> Self {
        Self {
            namespace: escape_string(namespace),
            route: escape_string(route),
            window: render_window(window),
        }
    }

    /// `namespace="..",route="..",backend=~"a|b"` followed by `extra` matchers.
    fn selector(&self, backends: &[String], extra: &str) -> String {
        let mut s = format!(
            r#"namespace="{}",route="{}",backend=~"{}""#,
            self.namespace,
            self.route,
            escape_string(&alternation(backends))
        );
        if !extra.is_empty() {
            s.push(',');
            s.push_str(extra);
        }
        s
    }

    fn rate(&self, metric: &str, backends: &[String], extra: &str) -> String {
        format!(
            "rate({metric}{{{}}}[{}])",
            self.selector(backends, extra),
            self.window
        )
    }

    fn sum_rate(&self, metric: &str, backends: &[String], extra: &str) -> String {
        format!("sum({})", self.rate(metric, backends, extra))
    }

    /// Attempts within the window: the traffic volume judged against `minRequests`.
    pub(crate) fn volume(&self, backends: &[String], traffic: Traffic) -> String {
        format!(
            "sum(increase({REQUESTS}{{{}}}[{}]))",
            self.selector(backends, traffic_matcher(traffic)),
            self.window
        )
    }

    /// Share of failed attempts. Live: attempts that failed over, returned an error or found
    /// the backend unavailable (no ready pods, no credentials, cooling down, saturated,
    /// ejected), over all live attempts except the caller's own mistakes (`client_error`).
    /// Shadow: copies whose code is not 2xx, over all copies.
    ///
    /// Never `or vector(0)`: a missing series is no data, not a 0% error rate. Live traffic is
    /// counted from the duration histogram's `_count`, whose failure series the gateway
    /// exports at 0 from a backend's first attempt, so they exist whenever the denominator
    /// does. The shadow numerator is a `code` series that appears with the first failed copy;
    /// it falls back to zero only where shadow copies were measured (`0 * denominator`), so
    /// no traffic still reads as no data.
    pub(crate) fn error_rate(&self, backends: &[String], traffic: Traffic) -> String {
        match traffic {
            Traffic::Live => format!(
                "{} / {}",
                self.sum_rate(
                    DURATION_COUNT,
                    backends,
                    r#"outcome=~"error|failover|unavailable""#
                ),
                self.sum_rate(DURATION_COUNT, backends, traffic_matcher(traffic))
            ),
            Traffic::Shadow => {
                let all = self.sum_rate(REQUESTS, backends, traffic_matcher(traffic));
                format!(
                    "({} or 0 * {all}) / {all}",
                    self.sum_rate(REQUESTS, backends, r#"outcome="shadow",code!~"2..""#),
                )
            }
        }
    }

    /// 95th percentile of attempt duration in seconds: successful live attempts, or all
    /// shadow copies (the histogram carries no status code).
    pub(crate) fn latency_p95(&self, backends: &[String], traffic: Traffic) -> String {
        let outcome = match traffic {
            Traffic::Live => r#"outcome="success""#,
            Traffic::Shadow => r#"outcome="shadow""#,
        };
        format!(
            "histogram_quantile(0.95, sum by (le) ({}))",
            self.rate(DURATION_BUCKET, backends, outcome)
        )
    }

    /// 95th percentile of time to first token in seconds. The gateway records it for
    /// successful streamed attempts, live and shadow alike (the histogram has no `outcome`),
    /// so in the mirror phase a gaining backend's value is its shadow copies'.
    pub(crate) fn ttft_p95(&self, backends: &[String]) -> String {
        format!(
            "histogram_quantile(0.95, sum by (le) ({}))",
            self.rate(TTFT_BUCKET, backends, "")
        )
    }

    /// Output tokens per successful live attempt of `backends`.
    pub(crate) fn tokens_per_request_live(&self, backends: &[String]) -> String {
        format!(
            "{} / {}",
            self.sum_rate(TOKENS, backends, OUTPUT_NOT_REPLAYED),
            self.sum_rate(REQUESTS, backends, r#"outcome="success""#)
        )
    }

    /// Output tokens per successful attempt of `backends` during the mirror phase.
    ///
    /// `switchyard_tokens_total` has no `outcome` label, so the tokens of shadow copies and of
    /// any live traffic the backends still serve are counted together; the denominator counts
    /// the attempts that record tokens: live successes and 2xx shadow copies.
    pub(crate) fn tokens_per_request_shadow(&self, backends: &[String]) -> String {
        format!(
            "{} / sum({} or {})",
            self.sum_rate(TOKENS, backends, OUTPUT_NOT_REPLAYED),
            self.rate(REQUESTS, backends, r#"outcome="success""#),
            self.rate(REQUESTS, backends, r#"outcome="shadow",code=~"2..""#)
        )
    }
}

/// Output tokens, without the controller's evaluation replays (whose attempts are not in
/// the denominators).
const OUTPUT_NOT_REPLAYED: &str = r#"type="output",tenant!="switchyard:eval""#;

fn traffic_matcher(traffic: Traffic) -> &'static str {
    match traffic {
        // Evaluation replays are the controller's, never the route's traffic.
        Traffic::Live => r#"outcome!~"shadow|client_error|eval""#,
        Traffic::Shadow => r#"outcome="shadow""#,
    }
}

/// Substitutes the placeholders of a custom check's query. Each is ready for use inside a
/// double-quoted PromQL string: `{{namespace}}` and `{{route}}` escaped as string literals,
/// `{{backend}}` as a regex alternation of the gaining backends (for `backend=~"{{backend}}"`),
/// `{{interval}}` as a range such as `60s`. Other text, unknown placeholders included, is left
/// as written.
pub fn render_template(
    query: &str,
    namespace: &str,
    route: &str,
    backends: &[String],
    window: Duration,
) -> String {
    let values = [
        ("{{namespace}}", escape_string(namespace)),
        ("{{route}}", escape_string(route)),
        ("{{backend}}", escape_string(&alternation(backends))),
        ("{{interval}}", render_window(window)),
    ];
    // One left-to-right pass, so a substituted value is never scanned for placeholders again.
    let mut out = String::with_capacity(query.len());
    let mut rest = query;
    'scan: while let Some(at) = rest.find("{{") {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        for (key, value) in &values {
            if let Some(after) = tail.strip_prefix(key) {
                out.push_str(value);
                rest = after;
                continue 'scan;
            }
        }
        out.push_str("{{");
        rest = &tail[2..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn windows_render_as_prometheus_ranges() {
        assert_eq!(render_window(Duration::from_secs(60)), "60s");
        assert_eq!(render_window(Duration::from_secs(600)), "600s");
        assert_eq!(render_window(Duration::from_millis(1500)), "1500ms");
        assert_eq!(render_window(Duration::from_millis(250)), "250ms");
    }

    #[test]
    fn strings_and_regexes_are_escaped() {
        assert_eq!(escape_string(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape_string("line\nbreak"), r"line\nbreak");
        assert_eq!(escape_regex("gpu.v2"), r"gpu\.v2");
        assert_eq!(
            escape_regex("a+b*(c)|[d]{e}^$?"),
            r"a\+b\*\(c\)\|\[d\]\{e\}\^\$\?"
        );
        assert_eq!(alternation(&names(&["a.b", "c"])), r"a\.b|c");
    }

    #[test]
    fn a_dotted_backend_is_regex_escaped_then_string_escaped() {
        let q = Queries::new("ns", "r", Duration::from_secs(60));
        assert_eq!(
            q.volume(&names(&["vllm.a", "b"]), Traffic::Live),
            r#"sum(increase(switchyard_requests_total{namespace="ns",route="r",backend=~"vllm\\.a|b",outcome!~"shadow|client_error|eval"}[60s]))"#
        );
    }

    #[test]
    fn quotes_in_label_values_cannot_break_out_of_the_selector() {
        let q = Queries::new(r#"x"} or vector(1) #"#, r"r\", Duration::from_secs(60));
        assert_eq!(
            q.volume(&names(&[r#"b"c"#]), Traffic::Shadow),
            r#"sum(increase(switchyard_requests_total{namespace="x\"} or vector(1) #",route="r\\",backend=~"b\"c",outcome="shadow"}[60s]))"#
        );
    }

    #[test]
    fn templates_substitute_every_placeholder() {
        let q = render_template(
            r#"sum(rate(x{namespace="{{namespace}}",route="{{route}}",backend=~"{{backend}}"}[{{interval}}])) / {{interval}}"#,
            "prod",
            "chat",
            &names(&["gpu.v2", "openai"]),
            Duration::from_secs(120),
        );
        assert_eq!(
            q,
            r#"sum(rate(x{namespace="prod",route="chat",backend=~"gpu\\.v2|openai"}[120s])) / 120s"#
        );
    }

    #[test]
    fn templates_leave_unknown_placeholders_and_do_not_rescan_values() {
        assert_eq!(
            render_template(
                "{{ namespace }} {{other}} {{namespace}} {{",
                "{{route}}",
                "r",
                &[],
                Duration::from_secs(1)
            ),
            "{{ namespace }} {{other}} {{route}} {{"
        );
        assert_eq!(
            render_template("no placeholders", "n", "r", &[], Duration::from_secs(1)),
            "no placeholders"
        );
    }

    #[test]
    fn templates_escape_quotes() {
        assert_eq!(
            render_template(
                r#"x{namespace="{{namespace}}"}"#,
                r#"a"b"#,
                "r",
                &[],
                Duration::from_secs(1)
            ),
            r#"x{namespace="a\"b"}"#
        );
    }
}
