//! From a request to a list of checks: which queries to send, and how each answer becomes a
//! verdict.

use std::time::Duration;

use futures::future::join_all;

use super::queries::{Queries, Traffic, render_template};
use super::relative::{self, Kind, Side, Tolerance};
use super::source::{Source, SourceError};
use super::{DEFAULT_MAX_ERROR_RATE, MAX_TOKEN_DIFFERENCE, Request, UNREACHABLE_PREFIX};
use crate::api::{CheckResult, Verdict};
use k8s_openapi::jiff::Timestamp;

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
    /// Compared with the stable backends: the gaining backend's query and the stable one's.
    Relative {
        tolerance: Tolerance,
        gaining: usize,
        stable: usize,
    },
    /// The check cannot be measured as configured; the reason says why.
    Misconfigured(String),
}

struct Pending {
    name: String,
    /// The backend judged, and the index of its traffic-volume query.
    backend: Option<(String, usize)>,
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
        Err(e @ SourceError::Partial(_)) => Reading::Failed(e.to_string()),
        Err(e) => Reading::Failed(format!("{UNREACHABLE_PREFIX}{e}")),
    }
}

fn result(
    p: &Pending,
    value: Option<f64>,
    verdict: Verdict,
    reason: Option<String>,
) -> CheckResult {
    CheckResult {
        name: p.name.clone(),
        backend: p.backend.as_ref().map(|(b, _)| b.clone()),
        value: value.filter(|v| v.is_finite()),
        baseline: None,
        threshold: p.bound.threshold(),
        verdict,
        reason,
    }
}

fn inconclusive(p: &Pending, value: Option<f64>, reason: &str) -> CheckResult {
    result(p, value, Verdict::Inconclusive, Some(reason.to_owned()))
}

/// Too little traffic for a built-in check to judge.
struct Gate {
    reason: String,
    /// Attempts in the window, when counted.
    volume: Option<f64>,
}

/// Pass or fail on the bound, unless `gate` (too little traffic) makes it inconclusive.
fn judge(p: &Pending, reading: Reading, gate: Option<&Gate>) -> CheckResult {
    match reading {
        Reading::Failed(reason) => inconclusive(p, None, &reason),
        Reading::NoData(reason) => {
            inconclusive(p, None, gate.map_or(reason.as_str(), |g| g.reason.as_str()))
        }
        Reading::Value(v) => match gate {
            Some(g) => inconclusive(p, Some(v), &g.reason),
            None if p.bound.holds(v) => result(p, Some(v), Verdict::Pass, None),
            None => result(p, Some(v), Verdict::Fail, None),
        },
    }
}

/// The error rate, where every attempt failing fails the check below `minRequests` too: a
/// canary that cannot serve at all needs no more evidence (and would otherwise hold).
fn judge_errors(p: &Pending, reading: Reading, gate: Option<&Gate>, window: &str) -> CheckResult {
    match (&reading, gate) {
        (
            Reading::Value(v),
            Some(Gate {
                volume: Some(n), ..
            }),
        ) if *v >= 1.0 && *n > 0.0 => {
            let why = format!(
                "every one of the {} attempts in {window} failed; fewer than minRequests, but a total failure needs no more traffic",
                super::format_value(*n)
            );
            result(p, Some(*v), Verdict::Fail, Some(why))
        }
        _ => judge(p, reading, gate),
    }
}

/// Runs every query of `req` at once, evaluated at `at` over `window`, and judges the answers.
pub(crate) async fn checks<S: Source>(
    source: &S,
    req: &Request<'_>,
    window: Result<Duration, String>,
    at: Timestamp,
) -> Vec<CheckResult> {
    let a = req.analysis;
    let mut problem = match a.interval.parse() {
        Err(e) => Some(format!("analysis.interval is not usable: {e}")),
        Ok(i) if i.is_zero() => Some("analysis.interval must be greater than zero".into()),
        Ok(_) => window.as_ref().err().cloned(),
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

    let mut queries: Vec<String> = vec![];
    // The same PromQL is sent once (the stable side of every relative check is shared).
    let mut ask = |promql: String| {
        if let Some(i) = queries.iter().position(|q| *q == promql) {
            return i;
        }
        queries.push(promql);
        queries.len() - 1
    };
    let latency_bound = a.max_latency_p95.as_ref().map(|max| max.parse());
    let baseline_tokens = (req.mirror && !req.baseline.is_empty())
        .then(|| ask(q.tokens_per_request_live(&req.baseline)));
    // Relative checks compare with the stable backends that are not gaining themselves.
    let stable_only: Vec<String> = req
        .baseline
        .iter()
        .filter(|b| !req.gaining.contains(b))
        .cloned()
        .collect();
    let mut tolerances = a
        .relative
        .as_ref()
        .map(relative::tolerances)
        .unwrap_or_default();
    if req.mirror {
        // Mirror copies are never streamed: TTFT has no shadow data to judge, and a check
        // that can only be inconclusive would hold the mirror phase until maxHold.
        tolerances.retain(|t| {
            !matches!(
                t,
                Ok(Tolerance {
                    kind: Kind::TtftP95,
                    ..
                }) | Err((Kind::TtftP95, _))
            )
        });
    }
    if req.baseline.is_empty() {
        // No stable backend serves live traffic at this step (the last step of a full
        // cutover): relative checks have no same-window baseline, and one that could only be
        // inconclusive would hold the step until maxHold and roll back a healthy migration.
        // The absolute checks judge it alone.
        tolerances.clear();
    }
    let stable_volume = (!tolerances.is_empty() && !stable_only.is_empty())
        .then(|| ask(q.volume(&stable_only, Traffic::Live)));
    let mut pending = vec![];
    for b in &req.gaining {
        let one = std::slice::from_ref(b);
        let volume = ask(q.volume(one, traffic));
        let backend = Some((b.clone(), volume));
        pending.push(Pending {
            name: "error-rate".into(),
            backend: backend.clone(),
            bound: Bound::AtMost(a.max_error_rate.unwrap_or(DEFAULT_MAX_ERROR_RATE)),
            measure: Measure::ErrorRate(ask(q.error_rate(one, traffic))),
        });
        match &latency_bound {
            Some(Ok(max)) => pending.push(Pending {
                name: "latency-p95".into(),
                backend: backend.clone(),
                bound: Bound::AtMost(max.as_secs_f64()),
                measure: Measure::Latency(ask(q.latency_p95(one, traffic))),
            }),
            Some(Err(e)) => pending.push(Pending {
                name: "latency-p95".into(),
                backend: backend.clone(),
                bound: Bound::Unset,
                measure: Measure::Misconfigured(format!("maxLatencyP95 is not usable: {e}")),
            }),
            None => {}
        }
        if req.mirror {
            pending.push(Pending {
                name: "token-difference".into(),
                backend,
                bound: Bound::AtMost(MAX_TOKEN_DIFFERENCE),
                measure: Measure::TokenDifference {
                    gaining: ask(q.tokens_per_request_shadow(one)),
                    baseline: baseline_tokens,
                },
            });
        }
        for t in &tolerances {
            let (kind, measure) = match t {
                Err((kind, why)) => (*kind, Measure::Misconfigured(why.clone())),
                Ok(t) if stable_only.is_empty() => (
                    t.kind,
                    Measure::Misconfigured(
                        "no stable backend outside the ones gaining traffic to compare with".into(),
                    ),
                ),
                Ok(t) => {
                    let (gaining, stable) = match t.kind {
                        Kind::ErrorRate => (
                            q.error_rate(one, traffic),
                            q.error_rate(&stable_only, Traffic::Live),
                        ),
                        Kind::LatencyP95 => (
                            q.latency_p95(one, traffic),
                            q.latency_p95(&stable_only, Traffic::Live),
                        ),
                        Kind::TtftP95 => (q.ttft_p95(one), q.ttft_p95(&stable_only)),
                        Kind::OutputTokens if req.mirror => (
                            q.tokens_per_request_shadow(one),
                            q.tokens_per_request_live(&stable_only),
                        ),
                        Kind::OutputTokens => (
                            q.tokens_per_request_live(one),
                            q.tokens_per_request_live(&stable_only),
                        ),
                    };
                    (
                        t.kind,
                        Measure::Relative {
                            tolerance: *t,
                            gaining: ask(gaining),
                            stable: ask(stable),
                        },
                    )
                }
            };
            pending.push(Pending {
                name: kind.name().into(),
                backend: Some((b.clone(), volume)),
                bound: Bound::Unset,
                measure,
            });
        }
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
            backend: None,
            bound,
            measure,
        });
    }

    if let Some(reason) = problem {
        if pending.is_empty() {
            // Still say why nothing was judged.
            pending.push(Pending {
                name: "error-rate".into(),
                backend: None,
                bound: Bound::AtMost(a.max_error_rate.unwrap_or(DEFAULT_MAX_ERROR_RATE)),
                measure: Measure::Misconfigured(reason.clone()),
            });
        }
        return pending
            .iter()
            .map(|p| inconclusive(p, None, &reason))
            .collect();
    }

    let answers = join_all(queries.iter().map(|promql| source.query(promql, at))).await;
    for (promql, answer) in queries.iter().zip(&answers) {
        tracing::debug!(route = req.route, namespace = req.namespace, query = %promql, ?answer, "analysis query");
    }
    if let Some(e) = answers.iter().find_map(|a| match a {
        Err(e @ (SourceError::Unreachable(_) | SourceError::InvalidUrl { .. })) => Some(e),
        _ => None,
    }) {
        let reason = format!("{UNREACHABLE_PREFIX}{e}");
        return pending
            .iter()
            .map(|p| inconclusive(p, None, &reason))
            .collect();
    }

    let shown_window = crate::duration::format(window);
    pending
        .iter()
        .map(|p| {
            let gate = p
                .backend
                .as_ref()
                .and_then(|(_, volume)| gate(req, &answers[*volume], window));
            let gate = gate.as_ref();
            match &p.measure {
                Measure::ErrorRate(i) => judge_errors(p, read(&answers[*i]), gate, &shown_window),
                Measure::Latency(i) => match (&answers[*i], gate) {
                    // Above the largest bucket: slower than anything the histogram resolves.
                    (Ok(Some(v)), None) if *v == f64::INFINITY => result(
                        p,
                        None,
                        Verdict::Fail,
                        Some("the 95th percentile is above the largest histogram bucket".into()),
                    ),
                    (answer, gate) => judge(p, read(answer), gate),
                },
                Measure::TokenDifference { gaining, baseline } => token_difference(
                    p,
                    &answers[*gaining],
                    baseline.map(|i| &answers[i]),
                    gate.map(|g| g.reason.as_str()),
                    req,
                ),
                Measure::Custom(i) => judge(p, read(&answers[*i]), None),
                Measure::Relative {
                    tolerance,
                    gaining,
                    stable,
                } => {
                    let stable_gate =
                        stable_volume.and_then(|i| stable_gate(req, &answers[i], window));
                    let why = gate.map(|g| g.reason.clone()).or(stable_gate);
                    let backend = p.backend.as_ref().map_or("", |(b, _)| b.as_str());
                    relative::judge(
                        tolerance,
                        backend,
                        side(&answers[*gaining]),
                        side(&answers[*stable]),
                        why.as_deref(),
                    )
                }
                Measure::Misconfigured(reason) => inconclusive(p, None, reason),
            }
        })
        .collect()
}

/// Why the built-in checks of one backend cannot judge: too little traffic on it.
fn gate(
    req: &Request<'_>,
    volume: &Result<Option<f64>, SourceError>,
    window: Duration,
) -> Option<Gate> {
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
        Reading::Failed(reason) => Some(Gate {
            reason: format!("request count: {reason}"),
            volume: None,
        }),
        Reading::NoData(_) => Some(Gate {
            reason: format!("no {kind} in {window}, fewer than minRequests {min}"),
            volume: None,
        }),
        Reading::Value(n) if n < f64::from(min) => {
            // Rounded down, so the count shown is never the minimum itself.
            let shown = (n * 10.0).floor() / 10.0;
            Some(Gate {
                reason: format!("{shown} {kind} in {window}, fewer than minRequests {min}"),
                volume: Some(n),
            })
        }
        Reading::Value(_) => None,
    }
}

/// A relative check's reading of one side.
fn side(answer: &Result<Option<f64>, SourceError>) -> Side {
    match (answer, read(answer)) {
        (Ok(Some(v)), _) if *v == f64::INFINITY => Side::AboveBuckets,
        (_, Reading::Value(v)) => Side::Value(v),
        (_, Reading::NoData(why) | Reading::Failed(why)) => Side::Missing(why),
    }
}

/// Why the stable side holds too little traffic to compare with, if it does.
fn stable_gate(
    req: &Request<'_>,
    volume: &Result<Option<f64>, SourceError>,
    window: Duration,
) -> Option<String> {
    let min = req.analysis.min_requests;
    if min <= 0 {
        return None;
    }
    let window = crate::duration::format(window);
    match read(volume) {
        Reading::Failed(reason) => Some(format!("stable request count: {reason}")),
        Reading::NoData(_) => Some(format!(
            "no requests to the stable backends in {window}, fewer than minRequests {min}"
        )),
        Reading::Value(n) if n < f64::from(min) => Some(format!(
            "{} requests to the stable backends in {window}, fewer than minRequests {min}",
            (n * 10.0).floor() / 10.0
        )),
        Reading::Value(_) => None,
    }
}

fn token_difference(
    p: &Pending,
    gaining: &Result<Option<f64>, SourceError>,
    baseline: Option<&Result<Option<f64>, SourceError>>,
    gate: Option<&str>,
    req: &Request<'_>,
) -> CheckResult {
    let Some(baseline) = baseline else {
        return inconclusive(p, None, "no baseline backends to compare with");
    };
    let (g, b) = match (read(gaining), read(baseline)) {
        (Reading::Failed(r), _) | (_, Reading::Failed(r)) => return inconclusive(p, None, &r),
        (Reading::NoData(_), _) => {
            let why = format!(
                "no output tokens per request for the shadow traffic of {}",
                p.backend.as_ref().map_or("", |(b, _)| b.as_str())
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
        result(p, Some(value), Verdict::Pass, None)
    } else {
        let why = format!(
            "shadow {} vs baseline {} output tokens per request ({:+.1}%)",
            super::format_value(g),
            super::format_value(b),
            relative * 100.0
        );
        result(p, Some(value), Verdict::Fail, Some(why))
    }
}
