//! Judging one rollout step from the gateway's Prometheus metrics.
//!
//! [`run`] measures each backend gaining traffic on its own (a good one cannot dilute a bad
//! one) over the analysis window ending at an explicit instant, and returns per backend one
//! [`CheckResult`] per built-in check, then the custom checks:
//!
//! 1. `error-rate`, always: failed attempts (`outcome` `error`, `failover` or `unavailable`)
//!    over all live attempts except the caller's mistakes (`client_error`), or, in the mirror
//!    phase, shadow copies whose code is not 2xx over all shadow copies. Fails above
//!    `maxErrorRate`, or above [`DEFAULT_MAX_ERROR_RATE`] (1%) when that is not set.
//! 2. `latency-p95`, when `maxLatencyP95` is set: the 95th percentile of successful (mirror:
//!    shadow) attempt duration, in seconds.
//! 3. `token-difference`, in the mirror phase only: the relative difference of output tokens
//!    per successful request between the gaining backends and the baseline's live traffic.
//!    Fails above [`MAX_TOKEN_DIFFERENCE`] (5%).
//! 4. With `relative`, checks that compare each gaining backend with the stable backends
//!    not gaining traffic, measured in the same window (see [`relative`]):
//!    `error-rate-vs-stable`, `latency-p95-vs-stable`, `ttft-p95-vs-stable` and
//!    `output-tokens-vs-stable`, each reporting both values (`value`, `baseline`) and the
//!    limit the stable value sets. Too little traffic on either side makes them inconclusive.
//! 5. Each custom `metrics` check, its query's placeholders substituted (see
//!    [`render_template`]), compared with its `min` and/or `max` (both inclusive).
//!
//! The window is `analysis.window`, by default four scrape intervals of the Prometheus asked
//! (see [`window`]); a shorter one makes every check inconclusive with a message naming the
//! smallest usable window. Traffic volume is not a check of its own: when fewer than
//! `minRequests` attempts (mirror: shadow copies) reached a gaining backend in the window, its
//! built-in checks are inconclusive, still reporting the values they measured — except that
//! every attempt failing is a failure whatever the volume. Prometheus warnings (partial data)
//! make the checks inconclusive, never a value. Custom checks measure whatever their
//! query says, so the volume does not gate them. An empty answer, NaN or ±Inf is no data and
//! makes a check inconclusive (except a p95 of +Inf: slower than the largest histogram bucket,
//! which fails). A query Prometheus rejects makes that check inconclusive with a reason
//! starting `query error: `. When Prometheus cannot be reached, every check is inconclusive
//! with a reason starting [`UNREACHABLE_PREFIX`]; see [`unreachable`]. The overall verdict is
//! the worst of the checks (`Pass < Inconclusive < Fail`).

pub mod cost;
mod evaluate;
mod queries;
mod relative;
mod source;

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::api::{self, Analysis, AnalysisResult, CheckResult, Verdict};

pub(crate) use queries::escape_string;
pub use queries::{render_template, render_window};
pub use source::{Labelled, Prometheus, QUERY_TIMEOUT, Source, SourceError};

/// Error-rate threshold when `maxErrorRate` is not set: 1% of attempts.
pub const DEFAULT_MAX_ERROR_RATE: f64 = 0.01;
/// Largest tolerated relative difference of output tokens per request in the mirror phase.
pub const MAX_TOKEN_DIFFERENCE: f64 = 0.05;
/// How the reason of every check starts when Prometheus could not be queried.
pub const UNREACHABLE_PREFIX: &str = "Prometheus unreachable: ";
/// A window holds at least this many scrapes, so `rate()` has samples to work with whatever
/// the phase of the scrapes.
pub const SCRAPES_PER_WINDOW: u32 = 4;
/// Prometheus' own default scrape interval, assumed when it cannot be read.
pub const DEFAULT_SCRAPE_INTERVAL: Duration = Duration::from_secs(60);

/// What to judge.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub namespace: &'a str,
    pub route: &'a str,
    /// Backends whose weight grows in this step (they are judged).
    pub gaining: Vec<String>,
    /// The stable backends (baseline for the mirror comparison).
    pub baseline: Vec<String>,
    pub analysis: &'a Analysis,
    /// Mirror phase: judge the shadow traffic (`outcome="shadow"`) of `gaining` instead of
    /// live traffic, and compare output tokens per request with the baseline's live traffic.
    pub mirror: bool,
    /// The scrape interval of the Prometheus asked, when known.
    pub scrape_interval: Option<Duration>,
}

/// The window queries look back over: `analysis.window`, by default [`SCRAPES_PER_WINDOW`]
/// scrape intervals; a shorter window cannot hold enough samples and is refused with a
/// message saying the smallest usable one.
pub fn window(analysis: &Analysis, scrape_interval: Option<Duration>) -> Result<Duration, String> {
    let scrape = scrape_interval.unwrap_or(DEFAULT_SCRAPE_INTERVAL);
    let min = scrape * SCRAPES_PER_WINDOW;
    let Some(w) = &analysis.window else {
        return Ok(min);
    };
    let w = w
        .parse()
        .map_err(|e| format!("analysis.window is not usable: {e}"))?;
    if w < min {
        return Err(format!(
            "analysis.window {} is shorter than {SCRAPES_PER_WINDOW} scrape intervals of Prometheus ({} each){}; set it to at least {} or remove it to use that default",
            crate::duration::format(w),
            crate::duration::format(scrape),
            if scrape_interval.is_none() {
                ", assumed as its configuration could not be read"
            } else {
                ""
            },
            crate::duration::format(min),
        ));
    }
    Ok(w)
}

/// Runs every check of `req` against `source`, every query evaluated at the instant `at`
/// (all at once), and judges the step.
pub async fn run<S: Source>(source: &S, req: &Request<'_>, at: Timestamp) -> AnalysisResult {
    let window = window(req.analysis, req.scrape_interval);
    let checks = evaluate::checks(source, req, window.clone(), at).await;
    AnalysisResult {
        time: Time(at),
        window: window
            .ok()
            .map(|w| api::Duration(crate::duration::format(w))),
        verdict: overall(&checks),
        checks,
    }
}

/// The worst verdict of the checks; `Pass` when there are none.
pub fn overall(checks: &[CheckResult]) -> Verdict {
    checks
        .iter()
        .map(|c| c.verdict)
        .max()
        .unwrap_or(Verdict::Pass)
}

/// Whether the analysis could not query Prometheus at all (as opposed to too little traffic
/// or no data), so the controller can report it under its own condition reason.
pub fn unreachable(result: &AnalysisResult) -> bool {
    result.checks.iter().any(|c| {
        c.verdict == Verdict::Inconclusive
            && c.reason
                .as_deref()
                .is_some_and(|r| r.starts_with(UNREACHABLE_PREFIX))
    })
}

/// One line for Events and conditions, e.g.
/// `error-rate 0.052 > 0.005 (Fail); latency-p95 0.41 <= 2 (Pass)`. A reason shared by several
/// inconclusive checks is written once; an unreachable Prometheus is just its reason.
pub fn summary(result: &AnalysisResult) -> String {
    if unreachable(result)
        && let Some(reason) = result.checks.iter().find_map(|c| c.reason.as_deref())
    {
        return reason.to_owned();
    }
    let mut said: Vec<&str> = Vec::new();
    let parts: Vec<String> = result
        .checks
        .iter()
        .map(|c| {
            let mut s = c.name.clone();
            if let Some(b) = &c.backend {
                s.push_str(&format!(" of {b}"));
            }
            match (c.verdict, c.value) {
                (Verdict::Pass, Some(v)) => {
                    s.push_str(&format!(" {} {}", format_value(v), passed(&c.threshold)));
                }
                (Verdict::Fail, Some(v)) => {
                    s.push_str(&format!(" {} {}", format_value(v), failed(&c.threshold)));
                }
                (_, Some(v)) => s.push_str(&format!(" {}", format_value(v))),
                (_, None) => {}
            }
            let verdict = format!("{:?}", c.verdict);
            match c.reason.as_deref() {
                Some(r) if !said.contains(&r) => {
                    said.push(r);
                    s.push_str(&format!(" ({verdict}: {r})"));
                }
                _ => s.push_str(&format!(" ({verdict})")),
            }
            s
        })
        .collect();
    parts.join("; ")
}

/// The threshold as met: `<= 2`, `in [1, 5]`.
fn passed(threshold: &str) -> String {
    if threshold.starts_with('[') {
        format!("in {threshold}")
    } else {
        threshold.to_owned()
    }
}

/// The threshold as missed: `> 2`, `< 0.9`, `outside [1, 5]`.
fn failed(threshold: &str) -> String {
    if let Some(rest) = threshold.strip_prefix("<= ") {
        format!("> {rest}")
    } else if let Some(rest) = threshold.strip_prefix(">= ") {
        format!("< {rest}")
    } else if threshold.starts_with('[') {
        format!("outside {threshold}")
    } else {
        threshold.to_owned()
    }
}

/// A measured value to three significant digits, without trailing zeros.
pub(crate) fn format_value(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let magnitude = v.abs().log10().floor() as i32;
    let decimals = (2 - magnitude).clamp(0, 12) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

#[cfg(test)]
mod tests;

/// A source for when no Prometheus can be asked at all (none configured, or a bad URL).
struct NoSource(String);

impl Source for NoSource {
    fn query(
        &self,
        _: &str,
        _: Timestamp,
    ) -> impl Future<Output = Result<Option<f64>, SourceError>> + Send {
        std::future::ready(Err(SourceError::Unreachable(self.0.clone())))
    }
}

/// The analysis when no Prometheus can be asked: every check inconclusive, with `why`
/// after the same "Prometheus unreachable" prefix a failed query gets.
pub async fn without_prometheus(req: &Request<'_>, now: Timestamp, why: &str) -> AnalysisResult {
    run(&NoSource(why.to_owned()), req, now).await
}
