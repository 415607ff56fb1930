//! From a request to a list of checks: which queries to send, and how each answer becomes a
//! verdict.

use std::time::Duration;

use futures::future::join_all;

use super::queries::{Queries, Traffic, render_template};
use super::source::{Source, SourceError};
use super::{DEFAULT_MAX_ERROR_RATE, MAX_TOKEN_DIFFERENCE, Request, UNREACHABLE_PREFIX};
use crate::api::{CheckResult, Verdict};

/// The bound a value must stay within to pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Bound {
    AtMost(f64),
    AtLeast(f64),
    Between(f64, f64),
    /// A custom check with neither `min` nor `max` (admission rejects it).
    Unset,
}

impl Bound {
    fn from_min_max(min: Option<f64>, max: Option<f64>) -> Self {
        match (min, max) {
            (Some(lo), Some(hi)) => Bound::Between(lo, hi),
            (Some(lo), None) => Bound::AtLeast(lo),
            (None, Some(hi)) => Bound::AtMost(hi),
            (None, None) => Bound::Unset,
        }
    }

    /// As shown in status: `<= 0.005`, `>= 0.9`, `[1, 5]`.
    fn threshold(&self) -> String {
        match self {
            Bound::AtMost(hi) => format!("<= {hi}"),
            Bound::AtLeast(lo) => format!(">= {lo}"),
            Bound::Between(lo, hi) => format!("[{lo}, {hi}]"),
            Bound::Unset => "none".into(),
        }
    }

    fn holds(&self, v: f64) -> bool {
        match *self {
            Bound::AtMost(hi) => v <= hi,
            Bound::AtLeast(lo) => v >= lo,
            Bound::Between(lo, hi) => lo <= v && v <= hi,
            Bound::Unset => false,
        }
    }
}

/// How a check gets its value.
enum Measure {
    /// Index of the query answering it.
    ErrorRate(usize),
    Latency(usize),
    /// Output tokens per request on both sides; no baseline query without baseline backends.
    TokenDifference {
        gaining: usize,
        baseline: Option<usize>,
    },
    Custom(usize),
    /// The check cannot be measured as configured; the reason says why.
    Misconfigured(String),
}

struct Pending {
    name: String,
    bound: Bound,
    measure: Measure,
}

/// One query's answer, as the evaluator sees it.
enum Reading {
    Value(f64),
    /// Empty, NaN or infinite; the text says which.
    NoData(String),
    /// The query failed; the text is the check's reason.
    Failed(String),
}

fn read(answer: &Result<Option<f64>, SourceError>) -> Reading {
    match answer {
        Ok(Some(v)) if v.is_finite() => Reading::Value(*v),
        Ok(Some(v)) if v.is_nan() => Reading::NoData("query returned NaN (no data)".into()),
        Ok(Some(v)) => Reading::NoData(format!("query returned {v} (no data)")),
        Ok(None) => Reading::NoData("query returned no data".into()),
        Err(SourceError::Query(m)) => Reading::Failed(format!("query error: {m}")),
        Err(e) => Reading::Failed(format!("{UNREACHABLE_PREFIX}{e}")),
    }
}

fn result(
    name: &str,
    bound: &Bound,
    value: Option<f64>,
    verdict: Verdict,
    reason: Option<String>,
) -> CheckResult {
    CheckResult {
        name: name.to_owned(),
        value: value.filter(|v| v.is_finite()),
        threshold: bound.threshold(),
        verdict,
        reason,
    }
}

fn inconclusive(p: &Pending, value: Option<f64>, reason: &str) -> CheckResult {
    result(
        &p.name,
        &p.bound,
        value,
        Verdict::Inconclusive,
        Some(reason.to_owned()),
    )
}

/// Pass or fail on the bound, unless `gate` (too little traffic) makes it inconclusive.
fn judge(p: &Pending, reading: Reading, gate: Option<&str>) -> CheckResult {
    match reading {
        Reading::Failed(reason) => inconclusive(p, None, &reason),
        Reading::NoData(reason) => inconclusive(p, None, gate.unwrap_or(&reason)),
        Reading::Value(v) => match gate {
            Some(gate) => inconclusive(p, Some(v), gate),
            None if p.bound.holds(v) => result(&p.name, &p.bound, Some(v), Verdict::Pass, None),
            None => result(&p.name, &p.bound, Some(v), Verdict::Fail, None),
        },
    }
}

/// Runs every query of `req` at once and judges the answers.
pub(crate) async fn checks<S: Source>(source: &S, req: &Request<'_>) -> Vec<CheckResult> {
    let a = req.analysis;
    let window = a.interval.parse();
    let mut problem = match &window {
        Err(e) => Some(format!("analysis.interval is not usable: {e}")),
        Ok(w) if w.is_zero() => Some("analysis.interval must be greater than zero".into()),
        Ok(_) => None,
    };
    if problem.is_none() && req.gaining.is_empty() {
        problem =
            Some("no backend gains traffic in this step, so there is nothing to judge".into());
    }
    let window = window.unwrap_or(Duration::from_secs(60));
    let traffic = if req.mirror {
        Traffic::Shadow
    } else {
        Traffic::Live
    };
    let q = Queries::new(req.namespace, req.route, window);

    let mut queries = vec![q.volume(&req.gaining, traffic)];
    let mut ask = |promql: String| {
        queries.push(promql);
        queries.len() - 1
    };
    let mut pending = vec![Pending {
        name: "error-rate".into(),
        bound: Bound::AtMost(a.max_error_rate.unwrap_or(DEFAULT_MAX_ERROR_RATE)),
        measure: Measure::ErrorRate(ask(q.error_rate(&req.gaining, traffic))),
    }];
    if let Some(max) = &a.max_latency_p95 {
        pending.push(match max.parse() {
            Ok(max) => Pending {
                name: "latency-p95".into(),
                bound: Bound::AtMost(max.as_secs_f64()),
                measure: Measure::Latency(ask(q.latency_p95(&req.gaining, traffic))),
            },
            Err(e) => Pending {
                name: "latency-p95".into(),
                bound: Bound::Unset,
                measure: Measure::Misconfigured(format!("maxLatencyP95 is not usable: {e}")),
            },
        });
    }
    if req.mirror {
        let gaining = ask(q.tokens_per_request_shadow(&req.gaining));
        let baseline =
            (!req.baseline.is_empty()).then(|| ask(q.tokens_per_request_live(&req.baseline)));
        pending.push(Pending {
            name: "token-difference".into(),
            bound: Bound::AtMost(MAX_TOKEN_DIFFERENCE),
            measure: Measure::TokenDifference { gaining, baseline },
        });
    }
    for m in &a.metrics {
        let bound = Bound::from_min_max(m.min, m.max);
        let measure = if bound == Bound::Unset {
            Measure::Misconfigured("the check has neither min nor max".into())
        } else {
            Measure::Custom(ask(render_template(
                &m.query,
                req.namespace,
                req.route,
                &req.gaining,
                window,
            )))
        };
        pending.push(Pending {
            name: m.name.clone(),
            bound,
            measure,
        });
    }

    if let Some(reason) = problem {
        return pending
            .iter()
            .map(|p| inconclusive(p, None, &reason))
            .collect();
    }

    let answers = join_all(queries.iter().map(|promql| source.query(promql))).await;
    for (promql, answer) in queries.iter().zip(&answers) {
        tracing::debug!(route = req.route, namespace = req.namespace, query = %promql, ?answer, "analysis query");
    }
    if let Some(e) = answers.iter().find_map(|a| match a {
        Err(SourceError::Query(_)) | Ok(_) => None,
        Err(e) => Some(e),
    }) {
        let reason = format!("{UNREACHABLE_PREFIX}{e}");
        return pending
            .iter()
            .map(|p| inconclusive(p, None, &reason))
            .collect();
    }

    let gate = gate(req, &answers[0], window);
    let gate = gate.as_deref();
    pending
        .iter()
        .map(|p| match &p.measure {
            Measure::ErrorRate(i) => judge(p, read(&answers[*i]), gate),
            Measure::Latency(i) => match (&answers[*i], gate) {
                // Above the largest bucket: slower than anything the histogram resolves.
                (Ok(Some(v)), None) if *v == f64::INFINITY => result(
                    &p.name,
                    &p.bound,
                    None,
                    Verdict::Fail,
                    Some("the 95th percentile is above the largest histogram bucket".into()),
                ),
                (answer, gate) => judge(p, read(answer), gate),
            },
            Measure::TokenDifference { gaining, baseline } => token_difference(
                p,
                req,
                &answers[*gaining],
                baseline.map(|i| &answers[i]),
                gate,
            ),
            Measure::Custom(i) => judge(p, read(&answers[*i]), None),
            Measure::Misconfigured(reason) => inconclusive(p, None, reason),
        })
        .collect()
}

/// Why the built-in checks cannot judge: too little traffic on the gaining backends.
fn gate(
    req: &Request<'_>,
    volume: &Result<Option<f64>, SourceError>,
    window: Duration,
) -> Option<String> {
    let min = req.analysis.min_requests;
    if min <= 0 {
        return None;
    }
    let kind = if req.mirror {
        "shadow requests"
    } else {
        "requests"
    };
    let window = crate::duration::format(window);
    match read(volume) {
        Reading::Failed(reason) => Some(format!("request count: {reason}")),
        Reading::NoData(_) => Some(format!(
            "no {kind} in {window}, fewer than minRequests {min}"
        )),
        Reading::Value(n) if n < f64::from(min) => {
            // Rounded down, so the count shown is never the minimum itself.
            let shown = (n * 10.0).floor() / 10.0;
            Some(format!(
                "{shown} {kind} in {window}, fewer than minRequests {min}"
            ))
        }
        Reading::Value(_) => None,
    }
}

fn token_difference(
    p: &Pending,
    req: &Request<'_>,
    gaining: &Result<Option<f64>, SourceError>,
    baseline: Option<&Result<Option<f64>, SourceError>>,
    gate: Option<&str>,
) -> CheckResult {
    let Some(baseline) = baseline else {
        return inconclusive(p, None, "no baseline backends to compare with");
    };
    let (g, b) = match (read(gaining), read(baseline)) {
        (Reading::Failed(r), _) | (_, Reading::Failed(r)) => return inconclusive(p, None, &r),
        (Reading::NoData(_), _) => {
            let why = format!(
                "no output tokens per request for the shadow traffic of {}",
                req.gaining.join(", ")
            );
            return inconclusive(p, None, gate.unwrap_or(&why));
        }
        (_, Reading::NoData(_)) => {
            let why = format!(
                "no output tokens per request for the baseline {}",
                req.baseline.join(", ")
            );
            return inconclusive(p, None, gate.unwrap_or(&why));
        }
        (Reading::Value(g), Reading::Value(b)) => (g, b),
    };
    if b <= 0.0 {
        let why = "the baseline reports no output tokens to compare with";
        return inconclusive(p, None, gate.unwrap_or(why));
    }
    let relative = (g - b) / b;
    let value = relative.abs();
    if let Some(gate) = gate {
        return inconclusive(p, Some(value), gate);
    }
    if p.bound.holds(value) {
        result(&p.name, &p.bound, Some(value), Verdict::Pass, None)
    } else {
        let why = format!(
            "shadow {} vs baseline {} output tokens per request ({:+.1}%)",
            super::format_value(g),
            super::format_value(b),
            relative * 100.0
        );
        result(&p.name, &p.bound, Some(value), Verdict::Fail, Some(why))
    }
}
