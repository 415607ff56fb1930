//! The few headers that cross the gateway besides the body. Up: a caller's options that only
//! mean something to a backend of its own dialect (`anthropic-beta`; OpenAI's organization
//! and project), never the caller's own key. Down: the backend's rate-limit state, so a
//! caller's SDK can pace itself as it would against the provider.

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;

use crate::api::Dialect;

/// The caller's headers passed to a backend of each dialect (and to no other: another
/// dialect's backend would not know them, or would read them wrongly).
const ANTHROPIC_OPTIONS: &[&str] = &["anthropic-beta"];
const OPENAI_OPTIONS: &[&str] = &["openai-organization", "openai-project"];

/// Appends to `out` the caller's options a backend of `dialect` understands.
pub fn forward(dialect: Dialect, caller: &HeaderMap, out: &mut Vec<(HeaderName, HeaderValue)>) {
    let names = match dialect {
        Dialect::Anthropic => ANTHROPIC_OPTIONS,
        Dialect::Openai => OPENAI_OPTIONS,
    };
    for &name in names {
        for v in caller.get_all(name) {
            out.push((HeaderName::from_static(name), v.clone()));
        }
    }
}

/// An upstream's rate-limit headers, kept for the caller's answer.
pub type Relayed = Vec<(HeaderName, HeaderValue)>;

/// Whether a backend's header tells its rate-limit state: OpenAI's `x-ratelimit-*`,
/// Anthropic's `anthropic-ratelimit-*`, and `retry-after`.
fn is_rate_limit(name: &HeaderName) -> bool {
    let n = name.as_str();
    n.starts_with("x-ratelimit-") || n.starts_with("anthropic-ratelimit-") || n == "retry-after"
}

/// The rate-limit headers of an upstream's answer.
pub fn rate_limits(upstream: &HeaderMap) -> Relayed {
    upstream
        .iter()
        .filter(|(k, _)| is_rate_limit(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Puts the relayed headers on the caller's answer.
pub fn relay(resp: &mut Response, relayed: &Relayed) {
    let h = resp.headers_mut();
    for (k, v) in relayed {
        h.insert(k.clone(), v.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_go_only_to_their_own_dialect() {
        let mut caller = HeaderMap::new();
        caller.insert("anthropic-beta", HeaderValue::from_static("tools-2024"));
        caller.insert("openai-organization", HeaderValue::from_static("org-1"));
        caller.insert("openai-project", HeaderValue::from_static("proj-1"));
        caller.insert(
            "authorization",
            HeaderValue::from_static("Bearer sk-gateway"),
        );
        let names = |d| {
            let mut out = vec![];
            forward(d, &caller, &mut out);
            out.into_iter()
                .map(|(k, _)| k.as_str().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(Dialect::Anthropic), ["anthropic-beta"]);
        assert_eq!(
            names(Dialect::Openai),
            ["openai-organization", "openai-project"]
        );
    }

    #[test]
    fn only_rate_limit_headers_are_relayed() {
        let mut up = HeaderMap::new();
        for (k, v) in [
            ("x-ratelimit-remaining-requests", "99"),
            ("anthropic-ratelimit-tokens-remaining", "1000"),
            ("retry-after", "3"),
            ("set-cookie", "a=b"),
            ("openai-organization", "org-provider"),
        ] {
            up.insert(k, HeaderValue::from_static(v));
        }
        let mut kept: Vec<String> = rate_limits(&up)
            .into_iter()
            .map(|(k, _)| k.as_str().to_owned())
            .collect();
        kept.sort();
        assert_eq!(
            kept,
            [
                "anthropic-ratelimit-tokens-remaining",
                "retry-after",
                "x-ratelimit-remaining-requests"
            ]
        );
    }
}
