//! Judging one rollout step from the gateway's Prometheus metrics.
//!
//! [`run`] measures the backends gaining traffic over the last `analysis.interval` and returns
//! one [`CheckResult`] per check, in this order:
//!
//! 1. `error-rate`, always: failed attempts (`outcome` `error` or `failover`) over all live
//!    attempts, or, in the mirror phase, shadow copies whose code is not 2xx over all shadow
//!    copies. Fails above `maxErrorRate`, or above [`DEFAULT_MAX_ERROR_RATE`] (1%) when that is
//!    not set.
//! 2. `latency-p95`, when `maxLatencyP95` is set: the 95th percentile of successful (mirror:
//!    shadow) attempt duration, in seconds.
//! 3. `token-difference`, in the mirror phase only: the relative difference of output tokens
//!    per successful request between the gaining backends and the baseline's live traffic.
//!    Fails above [`MAX_TOKEN_DIFFERENCE`] (5%).
//! 4. Each custom `metrics` check, its query's placeholders substituted (see
//!    [`render_template`]), compared with its `min` and/or `max` (both inclusive).
//!
//! Traffic volume is not a check of its own: when fewer than `minRequests` attempts (mirror:
//! shadow copies) reached the gaining backends in the window, every built-in check is
//! inconclusive, still reporting the values it measured. Custom checks measure whatever their
//! query says, so the volume does not gate them. An empty answer, NaN or ±Inf is no data and
//! makes a check inconclusive (except a p95 of +Inf: slower than the largest histogram bucket,
//! which fails). A query Prometheus rejects makes that check inconclusive with a reason
//! starting `query error: `. When Prometheus cannot be reached, every check is inconclusive
//! with a reason starting [`UNREACHABLE_PREFIX`]; see [`unreachable`]. The overall verdict is
//! the worst of the checks (`Pass < Inconclusive < Fail`).

mod evaluate;
mod queries;
mod source;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::api::{Analysis, AnalysisResult, CheckResult, Verdict};

pub use queries::{render_template, render_window};
pub use source::{Prometheus, QUERY_TIMEOUT, Source, SourceError};

/// Error-rate threshold when `maxErrorRate` is not set: 1% of attempts.
pub const DEFAULT_MAX_ERROR_RATE: f64 = 0.01;
/// Largest tolerated relative difference of output tokens per request in the mirror phase.
pub const MAX_TOKEN_DIFFERENCE: f64 = 0.05;
/// How the reason of every check starts when Prometheus could not be queried.
pub const UNREACHABLE_PREFIX: &str = "Prometheus unreachable: ";

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
}

/// Runs every check of `req` against `source` (all queries at once) and judges the step.
pub async fn run<S: Source>(source: &S, req: &Request<'_>, now: Timestamp) -> AnalysisResult {
    let checks = evaluate::checks(source, req).await;
    AnalysisResult {
        time: Time(now),
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
    fn query(&self, _: &str) -> impl Future<Output = Result<Option<f64>, SourceError>> + Send {
        std::future::ready(Err(SourceError::Unreachable(self.0.clone())))
    }
}

/// The analysis when no Prometheus can be asked: every check inconclusive, with `why`
/// after the same "Prometheus unreachable" prefix a failed query gets.
pub async fn without_prometheus(req: &Request<'_>, now: Timestamp, why: &str) -> AnalysisResult {
    run(&NoSource(why.to_owned()), req, now).await
}
