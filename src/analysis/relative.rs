//! Checks relative to the stable backends (as Kayenta judges a canary against its baseline):
//! the gaining backend and the stable ones are measured in the same window, and the gaining
//! one fails when it is worse by more than a share of the stable value *and* by more than an
//! absolute floor. The floor keeps a histogram's bucket width from deciding alone: a p95 that
//! moves from one bucket's interpolation to the next is not a regression of 1.5%.

use crate::api::{CheckResult, RelativeChecks, Verdict};

use super::format_value;

/// What a relative check compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    ErrorRate,
    LatencyP95,
    TtftP95,
    OutputTokens,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::ErrorRate => "error-rate-vs-stable",
            Kind::LatencyP95 => "latency-p95-vs-stable",
            Kind::TtftP95 => "ttft-p95-vs-stable",
            Kind::OutputTokens => "output-tokens-vs-stable",
        }
    }

    /// Output tokens differ in either direction; the others only get worse upwards.
    fn two_sided(self) -> bool {
        self == Kind::OutputTokens
    }

    fn unit(self) -> &'static str {
        match self {
            Kind::ErrorRate => "",
            Kind::LatencyP95 | Kind::TtftP95 => " s",
            Kind::OutputTokens => " tokens",
        }
    }
}

/// One configured relative check: the tolerated share of the stable value and the floor, in
/// the unit of the value (a fraction of requests, seconds or tokens per request).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Tolerance {
    pub kind: Kind,
    pub share: f64,
    pub floor: f64,
}

/// The configured checks in a fixed order, or why one cannot be used.
pub(crate) fn tolerances(checks: &RelativeChecks) -> Vec<Result<Tolerance, (Kind, String)>> {
    let mut out = vec![];
    if let Some(c) = &checks.error_rate {
        out.push(Ok(Tolerance {
            kind: Kind::ErrorRate,
            share: c.max_increase,
            floor: c.floor,
        }));
    }
    for (kind, c) in [
        (Kind::LatencyP95, &checks.latency_p95),
        (Kind::TtftP95, &checks.ttft_p95),
    ] {
        if let Some(c) = c {
            out.push(match c.floor.parse() {
                Ok(floor) => Ok(Tolerance {
                    kind,
                    share: c.max_increase,
                    floor: floor.as_secs_f64(),
                }),
                Err(e) => Err((kind, format!("floor is not usable: {e}"))),
            });
        }
    }
    if let Some(c) = &checks.output_tokens {
        out.push(Ok(Tolerance {
            kind: Kind::OutputTokens,
            share: c.max_difference,
            floor: c.floor,
        }));
    }
    out
}

/// A side's measurement, as far as it got.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Side {
    Value(f64),
    /// Slower than the largest histogram bucket (a quantile of +Inf).
    AboveBuckets,
    /// No usable value; the text says why.
    Missing(String),
}

/// The band the gaining value must stay within, given the stable value.
fn band(t: &Tolerance, stable: f64) -> (Option<f64>, f64) {
    let margin = (stable * t.share).max(t.floor);
    let lo = t.kind.two_sided().then(|| (stable - margin).max(0.0));
    (lo, stable + margin)
}

/// The limit as shown, to four significant digits: three (as values are shown) would round
/// 10.15 up to a limit the value may exceed and still pass.
fn threshold(lo: Option<f64>, hi: f64) -> String {
    match lo {
        Some(lo) => format!("[{}, {}]", limit(lo), limit(hi)),
        None => format!("<= {}", limit(hi)),
    }
}

fn limit(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let magnitude = v.abs().log10().floor() as i32;
    let decimals = (3 - magnitude).clamp(0, 12) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

/// Judges one gaining backend against the stable backends. `gate` is why too little traffic
/// reached either side to judge (the values are still reported).
pub(crate) fn judge(
    t: &Tolerance,
    backend: &str,
    gaining: Side,
    stable: Side,
    gate: Option<&str>,
) -> CheckResult {
    let mut c = CheckResult {
        name: t.kind.name().into(),
        backend: Some(backend.into()),
        value: None,
        baseline: None,
        threshold: "relative to the stable backends".into(),
        verdict: Verdict::Inconclusive,
        reason: None,
    };
    let (g, s) = match (gaining, stable) {
        (Side::Missing(why), _) => {
            c.reason = Some(gate.map_or(why, str::to_owned));
            return c;
        }
        (_, Side::Missing(why)) => {
            c.reason = Some(gate.map_or_else(|| format!("stable backends: {why}"), str::to_owned));
            return c;
        }
        (Side::AboveBuckets, Side::AboveBuckets) => {
            c.reason = Some(
                "both sides are above the largest histogram bucket, so they cannot be compared"
                    .into(),
            );
            return c;
        }
        (Side::AboveBuckets, Side::Value(s)) => {
            let (_, hi) = band(t, s);
            c.baseline = Some(s);
            c.threshold = threshold(None, hi);
            if let Some(gate) = gate {
                c.reason = Some(gate.into());
                return c;
            }
            c.verdict = Verdict::Fail;
            c.reason = Some(format!(
                "{backend} is above the largest histogram bucket; stable {}{}",
                format_value(s),
                t.kind.unit()
            ));
            return c;
        }
        (Side::Value(g), Side::AboveBuckets) => {
            // Faster than a stable side slower than anything measurable is no regression.
            c.value = Some(g);
            c.reason = Some(gate.map_or_else(
                || "the stable backends are above the largest histogram bucket".into(),
                str::to_owned,
            ));
            if gate.is_none() {
                c.verdict = Verdict::Pass;
            }
            return c;
        }
        (Side::Value(g), Side::Value(s)) => (g, s),
    };
    let (lo, hi) = band(t, s);
    c.value = Some(g);
    c.baseline = Some(s);
    c.threshold = threshold(lo, hi);
    if let Some(gate) = gate {
        c.reason = Some(gate.into());
        return c;
    }
    if g <= hi && lo.is_none_or(|lo| g >= lo) {
        c.verdict = Verdict::Pass;
        return c;
    }
    c.verdict = Verdict::Fail;
    let change = if s > 0.0 {
        format!(" ({:+.1}%)", (g - s) / s * 100.0)
    } else {
        String::new()
    };
    c.reason = Some(format!(
        "{backend} {}{unit} vs stable {}{unit}{change}; tolerated {}{} of it or {}{unit}",
        format_value(g),
        format_value(s),
        if t.kind.two_sided() { "±" } else { "+" },
        format_percent(t.share),
        format_value(t.floor),
        unit = t.kind.unit(),
    ));
    c
}

fn format_percent(share: f64) -> String {
    format!("{}%", format_value(share * 100.0))
}
