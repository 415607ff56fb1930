//! The shadow after a cutover. A promotion that takes all traffic off some backends (the old
//! ones) may keep copying a share of requests to them for `postCutoverShadow.duration`: the
//! gateway sends the copies (through `status.mirror`, as in the mirror phase) and discards
//! their answers, and each analysis compares the old backends' copies with the new stable
//! split's live traffic. Directions matter when reading the results: the judged side is the
//! *old* backend, the baseline is the *new* split.
//!
//! The route stays `Stable` and Ready: the split is in effect, the shadow only observes. A
//! discrepancy never rolls anything back (the cutover is done); it is recorded, and the shadow
//! ends with an Event saying whether the old backends can be decommissioned.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::engine::{AnalysisPlan, Event, after};
use super::settings::settings;
use super::split::{same_split, weights_summary};
use crate::api::{
    AnalysisResult, Discrepancy, DriftCount, MirrorStatus, ModelRouteSpec, ModelRouteStatus,
    PostCutoverPhase, PostCutoverShadow, Verdict, WeightedBackend,
};

/// Most discrepancies kept in `status.postCutover.discrepancies`; `drift` keeps the counts.
pub const DISCREPANCY_LIMIT: usize = 10;

/// Whether the old backends are being shadowed now.
pub fn shadowing(st: &ModelRouteStatus) -> bool {
    st.post_cutover
        .as_ref()
        .is_some_and(|p| p.phase == PostCutoverPhase::Shadowing)
}

/// Backends that carried traffic in `from` and carry none in `to`: what a cutover retired.
pub(super) fn retired(from: &[WeightedBackend], to: &[WeightedBackend]) -> Vec<String> {
    let carries =
        |ws: &[WeightedBackend], name: &str| ws.iter().any(|w| w.name == name && w.weight > 0);
    let mut out: Vec<String> = vec![];
    for w in from {
        if carries(from, &w.name) && !carries(to, &w.name) && !out.contains(&w.name) {
            out.push(w.name.clone());
        }
    }
    out
}

/// Called on every promotion, from the split before it (`from`) to `st.stable`, with the
/// migration's own `postCutoverShadow` (its snapshot, so an edit mid-migration cannot change
/// what its promotion does). Starts the shadow when asked for and some backend was retired;
/// otherwise forgets the previous promotion's shadow (history keeps its summary).
pub(super) fn begin(
    st: &mut ModelRouteStatus,
    from: &[WeightedBackend],
    shadow: Option<&PostCutoverShadow>,
    now: Timestamp,
    events: &mut Vec<Event>,
) {
    st.post_cutover = None;
    let Some(shadow) = shadow else {
        return;
    };
    let old = retired(from, &st.stable);
    if old.is_empty() {
        return;
    }
    // Admission checks the grammar; an object written before the rule existed gets no shadow
    // rather than one that never ends.
    let Ok(duration) = shadow.duration.parse() else {
        return;
    };
    let new: Vec<String> = st
        .stable
        .iter()
        .filter(|w| w.weight > 0)
        .map(|w| w.name.clone())
        .collect();
    events.push(Event::normal(
        "ShadowStarted",
        format!(
            "copying {}% of requests to the old backend {} for {} to compare it with the new split {}",
            shadow.percent,
            old.join(", "),
            crate::duration::format(duration),
            weights_summary(&st.stable)
        ),
    ));
    st.post_cutover = Some(crate::api::PostCutoverStatus {
        phase: PostCutoverPhase::Shadowing,
        backends: old,
        compared_with: new,
        percent: shadow.percent,
        started_at: Time(now),
        until: Time(after(now, duration)),
        finished_at: None,
        analyses: 0,
        inconclusive: 0,
        drift: vec![],
        discrepancies: vec![],
        message: None,
    });
}

/// The analysis of the shadow, when one is due: the old backends' copies judged against the
/// new stable backends' live traffic (the mirror phase's checks, roles swapped).
pub(super) fn analysis_due(
    spec: &ModelRouteSpec,
    status: &ModelRouteStatus,
    now: Timestamp,
) -> Option<AnalysisPlan> {
    if !status.target.is_empty() || !shadowing(status) {
        return None;
    }
    let pc = status.post_cutover.as_ref()?;
    let from = last_analysis(status).max(pc.started_at.0);
    if now < after(from, settings(spec, status).interval()) {
        return None;
    }
    Some(AnalysisPlan {
        gaining: pc.backends.clone(),
        baseline: pc.compared_with.clone(),
        mirror: true,
    })
}

fn last_analysis(st: &ModelRouteStatus) -> Timestamp {
    st.last_analysis
        .as_ref()
        .map_or(Timestamp::MIN, |a| a.time.0)
}

/// Runs first in every decision while the shadow lasts: records its analysis (returning
/// `None`, so the analysis never reaches a migration), and ends the shadow when `spec.backends`
/// changed, an old backend is gone, or its time is up. Any other analysis is returned as is.
pub(super) fn observe(
    st: &mut ModelRouteStatus,
    desired: &[WeightedBackend],
    gone: &[String],
    analysis: Option<AnalysisResult>,
    now: Timestamp,
    events: &mut Vec<Event>,
) -> Option<AnalysisResult> {
    if !shadowing(st) {
        return analysis;
    }
    if let Some(result) = analysis {
        record(st, &result);
        st.last_analysis = Some(result);
    }
    let pc = st.post_cutover.as_ref()?;
    let gone: Vec<&String> = pc.backends.iter().filter(|b| gone.contains(b)).collect();
    if !gone.is_empty() {
        let why = format!(
            "{} deleted; the shadow stopped after {} analyses",
            names(&gone),
            pc.analyses
        );
        end(st, PostCutoverPhase::BackendDeleted, why.clone(), now);
        events.push(Event::normal("ShadowEnded", why));
    } else if !st.target.is_empty() || !same_split(desired, &st.stable) {
        let why = format!(
            "spec.backends changed, so a new migration starts; the shadow of {} stopped after {} analyses",
            pc.backends.join(", "),
            pc.analyses
        );
        end(st, PostCutoverPhase::Superseded, why.clone(), now);
        events.push(Event::normal("ShadowEnded", why));
    } else if now >= pc.until.0 {
        conclude(st, now, events);
    }
    None
}

fn names(ns: &[&String]) -> String {
    ns.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
}

/// Counts one analysis of the shadow. An analysis whose window reaches back before the
/// shadow began mixes the old backends' last live traffic with the copies, so it is not
/// counted (it still advances the analysis clock).
fn record(st: &mut ModelRouteStatus, result: &AnalysisResult) {
    let Some(pc) = st.post_cutover.as_mut() else {
        return;
    };
    let window = result
        .window
        .as_ref()
        .and_then(|w| w.parse().ok())
        .unwrap_or(Duration::ZERO);
    if result.time.0 < after(pc.started_at.0, window) {
        return;
    }
    if result.verdict == Verdict::Inconclusive {
        pc.inconclusive += 1;
        return;
    }
    pc.analyses += 1;
    for c in result.checks.iter().filter(|c| c.verdict == Verdict::Fail) {
        // A check of no single backend (a custom query) is charged to all the old ones.
        let backend = c.backend.clone().unwrap_or_else(|| pc.backends.join(","));
        match pc
            .drift
            .iter_mut()
            .find(|d| d.check == c.name && d.backend == backend)
        {
            Some(d) => {
                d.count += 1;
                d.value = c.value;
                d.baseline = c.baseline;
            }
            None => pc.drift.push(DriftCount {
                check: c.name.clone(),
                backend: backend.clone(),
                count: 1,
                value: c.value,
                baseline: c.baseline,
            }),
        }
        pc.discrepancies.push(Discrepancy {
            time: result.time.clone(),
            check: c.name.clone(),
            backend,
            value: c.value,
            baseline: c.baseline,
            threshold: c.threshold.clone(),
            reason: c.reason.clone(),
        });
    }
    if pc.discrepancies.len() > DISCREPANCY_LIMIT {
        let excess = pc.discrepancies.len() - DISCREPANCY_LIMIT;
        pc.discrepancies.drain(..excess);
    }
}

/// The shadow ran its whole duration: says whether the old backends can go.
fn conclude(st: &mut ModelRouteStatus, now: Timestamp, events: &mut Vec<Event>) {
    let Some(pc) = st.post_cutover.as_ref() else {
        return;
    };
    let old = pc.backends.join(", ");
    let new = pc.compared_with.join(", ");
    let span = Duration::try_from(pc.until.0.duration_since(pc.started_at.0))
        .map(crate::duration::format)
        .unwrap_or_default();
    let (phase, event) = if !pc.drift.is_empty() {
        let what: Vec<String> = pc
            .drift
            .iter()
            .map(|d| describe(d, pc.analyses, &new))
            .collect();
        let message = format!(
            "old backend {old} drifted from the new split over {span}: {}; check before decommissioning it",
            what.join("; ")
        );
        (
            PostCutoverPhase::Drifted,
            Event::warning("ShadowDrift", message),
        )
    } else if pc.analyses == 0 {
        let message = format!(
            "no analysis could compare old backend {old} with the new split over {span} ({} inconclusive): nothing is known either way",
            pc.inconclusive
        );
        (
            PostCutoverPhase::Inconclusive,
            Event::warning("ShadowInconclusive", message),
        )
    } else {
        let message = format!(
            "old backend {old} matched the new split ({new}) over {span} ({} analyses): it can be decommissioned",
            pc.analyses
        );
        (
            PostCutoverPhase::Matched,
            Event::normal("ShadowCompleted", message),
        )
    };
    end(st, phase, event.message.clone(), now);
    events.push(event);
}

/// One drifted check for a reader: the old backend first, the new split as the reference.
fn describe(d: &DriftCount, analyses: i32, new: &str) -> String {
    let old = &d.backend;
    let what = match (d.value, d.baseline) {
        (Some(v), Some(b)) if b > 0.0 && d.check.contains("token") => format!(
            "{old} answered {} {} than {new}",
            percent((v - b).abs() / b),
            if v > b { "longer" } else { "shorter" }
        ),
        (Some(v), Some(b))
            if b > 0.0 && (d.check.contains("latency") || d.check.contains("ttft")) =>
        {
            format!(
                "{old} was {} {} than {new}",
                percent((v - b).abs() / b),
                if v > b { "slower" } else { "faster" }
            )
        }
        (Some(v), Some(b)) if d.check.contains("error") => format!(
            "{old} failed {} of the copies, {new} {} of its requests",
            percent(v),
            percent(b)
        ),
        (Some(v), None) if d.check == "token-difference" => format!(
            "{old}'s answers differed in length from {new}'s by {}",
            percent(v)
        ),
        (Some(v), Some(b)) => format!(
            "{old} measured {} against {} on {new}",
            crate::analysis::format_value(v),
            crate::analysis::format_value(b)
        ),
        (Some(v), None) => format!("{old} measured {}", crate::analysis::format_value(v)),
        (None, _) => format!("{old} failed it"),
    };
    format!("{}: {what} in {} of {analyses} analyses", d.check, d.count)
}

fn percent(share: f64) -> String {
    format!("{}%", crate::analysis::format_value(share * 100.0))
}

/// Ends the shadow: the gateway stops copying, the summary stays in status and in the
/// promotion's history record.
fn end(st: &mut ModelRouteStatus, phase: PostCutoverPhase, message: String, now: Timestamp) {
    let Some(pc) = st.post_cutover.as_mut() else {
        return;
    };
    pc.phase = phase;
    pc.finished_at = Some(Time(now));
    pc.message = Some(message.clone());
    let started = pc.started_at.0;
    st.mirror = None;
    if let Some(record) = st
        .history
        .iter_mut()
        .rev()
        .find(|h| h.finished_at.0 == started)
    {
        record.post_cutover = Some(format!("{phase:?}: {message}"));
    }
}

/// What the gateway copies when no migration runs: the shadow's share to the old backends.
pub(super) fn mirror(st: &ModelRouteStatus) -> Option<MirrorStatus> {
    let pc = st.post_cutover.as_ref().filter(|_| shadowing(st))?;
    Some(MirrorStatus {
        percent: pc.percent,
        backends: pc.backends.clone(),
    })
}

/// When to look again while shadowing: the next analysis or the end, whichever is first.
pub(super) fn next_wake(
    st: &ModelRouteStatus,
    interval: Duration,
    now: Timestamp,
) -> Option<Duration> {
    let pc = st.post_cutover.as_ref().filter(|_| shadowing(st))?;
    let next = after(last_analysis(st).max(pc.started_at.0), interval);
    let wake = next.min(pc.until.0);
    let d = Duration::try_from(wake.duration_since(now)).unwrap_or(Duration::ZERO);
    Some(d.max(Duration::from_millis(500)))
}
