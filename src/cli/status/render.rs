//! The text `kubectl switchyard status` prints: a pure function of the route, its Events and
//! the time, so every line is tested without a cluster or a clock.

use std::fmt::Write;

use k8s_openapi::api::core::v1::Event;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use crate::api::{
    AnalysisResult, ModelRoute, ModelRouteStatus, PostCutoverPhase, PostCutoverStatus,
    WeightedBackend, find_condition,
};
use crate::cli::table::Table;
use crate::migration::{self, weights_summary};

/// How many of the route's Events are shown (the most recent).
pub const MAX_EVENTS: usize = 10;
/// Cells of a weight bar at 100%.
pub const BAR_WIDTH: usize = 40;

/// One Event about the route, reduced to what is printed.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteEvent {
    /// When it last happened.
    pub time: Timestamp,
    pub kind: String,
    pub reason: String,
    pub message: String,
    /// How often it happened (Events of a series count their repeats).
    pub count: i32,
    /// The route it was about; a route deleted and created again under its name gets a new
    /// uid, and the old one's Events are not its history.
    pub uid: Option<String>,
}

impl RouteEvent {
    /// Reads an Event as the API server serves it in `core/v1`: Events written through
    /// `events.k8s.io/v1` (as the controller's recorder does) keep their time in `eventTime`
    /// and repeats in `series`; older writers use `lastTimestamp` and `count`.
    pub fn from_event(e: &Event) -> Option<Self> {
        let time = e
            .series
            .as_ref()
            .and_then(|s| s.last_observed_time.as_ref().map(|t| t.0))
            .or(e.last_timestamp.as_ref().map(|t| t.0))
            .or(e.event_time.as_ref().map(|t| t.0))
            .or(e.first_timestamp.as_ref().map(|t| t.0))
            .or(e.metadata.creation_timestamp.as_ref().map(|t| t.0))?;
        Some(RouteEvent {
            time,
            kind: e.type_.clone().unwrap_or_else(|| "Normal".into()),
            reason: e.reason.clone().unwrap_or_default(),
            message: e.message.clone().unwrap_or_default(),
            count: e
                .series
                .as_ref()
                .and_then(|s| s.count)
                .or(e.count)
                .unwrap_or(1),
            uid: e.involved_object.uid.clone(),
        })
    }
}

/// Everything one screen of `status` shows.
pub struct View<'a> {
    pub route: &'a ModelRoute,
    /// The route's Events in any order.
    pub events: &'a [RouteEvent],
    /// Why Events could not be read (e.g. no permission), shown in their place.
    pub events_error: Option<&'a str>,
}

/// "12s ago", "3m4s ago", "2h5m ago".
pub fn ago(now: Timestamp, t: Timestamp) -> String {
    let s = (now.as_second() - t.as_second()).max(0);
    match s {
        ..=59 => format!("{s}s ago"),
        60..=3599 => format!("{}m{}s ago", s / 60, s % 60),
        _ => format!("{}h{}m ago", s / 3600, (s % 3600) / 60),
    }
}

pub fn render(view: &View, now: Timestamp) -> String {
    let mr = view.route;
    let st = mr.status.clone().unwrap_or_default();
    let cfg = migration::settings(&mr.spec, &st);
    let name = mr.name_any();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Route {name} (namespace {}), model {:?}",
        mr.namespace().unwrap_or_default(),
        mr.spec.model_name(&name)
    );
    let ready = find_condition(&st.conditions, "Ready");
    let _ = writeln!(
        out,
        "Phase:    {}{}",
        st.phase.map_or("-".into(), |p| format!("{p:?}")),
        ready.map_or(String::new(), |c| format!(
            "   Ready={} ({})",
            c.status, c.reason
        ))
    );
    let started = st.step_started_at.as_ref().map_or(String::new(), |t| {
        format!(", step started {}", ago(now, t.0))
    });
    let _ = writeln!(
        out,
        "Steps:    {}   (each at least {}{started})",
        steps_line(&cfg.steps, st.step, !st.target.is_empty()),
        crate::duration::format(cfg.step_duration)
    );
    if st.rollout.is_some() {
        let _ = writeln!(
            out,
            "Settings: fixed when this migration started (status.rollout){}",
            if migration::settings::edited_mid_migration(&mr.spec, &st) {
                "; spec.rollout has changed since and applies to the next migration"
            } else {
                ""
            }
        );
    }
    let _ = writeln!(out, "Stable:   {}", weights_summary(&st.stable));
    if !st.target.is_empty() {
        let _ = writeln!(out, "Target:   {}", weights_summary(&st.target));
    }
    let _ = writeln!(
        out,
        "Weights:  {}   (what the gateway applies now)",
        weights_summary(&st.weights)
    );
    out.push_str(&weight_bars(&st.weights));
    if let Some(m) = &st.mirror {
        let _ = writeln!(
            out,
            "Mirror:   {}% of requests copied to {}",
            m.percent,
            m.backends.join(", ")
        );
    }
    if let Some(pc) = &st.post_cutover {
        out.push_str(&post_cutover(pc, now));
    }
    if let Some(c) = find_condition(&st.conditions, "Stalled").filter(|c| c.status == "True") {
        let _ = writeln!(out, "Stalled:  {}: {}", c.reason, c.message);
    }
    if let Some(e) = &st.evaluation {
        out.push_str(&evaluation(e));
    }
    match &st.last_analysis {
        Some(a) => out.push_str(&analysis(a, now)),
        None => out.push_str("Last analysis: none yet\n"),
    }
    out.push_str(&history(&st, view, now));
    out
}

/// The latest replay of the evaluation set: verdict and why, each backend's pass count, and
/// the failing examples.
pub fn evaluation(e: &crate::api::EvaluationStatus) -> String {
    let mut out = format!(
        "Evaluation (step {}): {:?}: {}\n",
        e.step, e.verdict, e.message
    );
    for b in &e.backends {
        let role = if b.stable { "stable" } else { "new" };
        let _ = writeln!(
            out,
            "  {} ({role}): {} of {} passed",
            b.backend, b.passed, b.total
        );
    }
    for f in &e.failing {
        let _ = writeln!(out, "  failing: {} on {}: {}", f.case, f.backend, f.reason);
    }
    out
}

/// The shadow of the old backends after the latest promotion: what is compared and until
/// when, or how it ended; then what drifted, old backend first, the new split as reference.
fn post_cutover(pc: &PostCutoverStatus, now: Timestamp) -> String {
    let mut out = String::new();
    let tally = format!("{} analyses, {} inconclusive", pc.analyses, pc.inconclusive);
    if pc.phase == PostCutoverPhase::Shadowing {
        let left = (pc.until.0.as_second() - now.as_second()).max(0);
        let _ = writeln!(
            out,
            "Shadow:   old backend {} gets {}% of requests as copies, compared with {} for {} more; {tally}",
            pc.backends.join(", "),
            pc.percent,
            pc.compared_with.join(", "),
            crate::duration::format(std::time::Duration::from_secs(left as u64)),
        );
    } else {
        let _ = writeln!(
            out,
            "Shadow:   {:?} {}: {}",
            pc.phase,
            pc.finished_at
                .as_ref()
                .map_or_else(|| "-".into(), |t| ago(now, t.0)),
            pc.message.as_deref().unwrap_or(&tally)
        );
    }
    for d in &pc.drift {
        let values = match (d.value, d.baseline) {
            (Some(v), Some(b)) => format!(
                " (latest {} vs {} on the new split)",
                crate::analysis::format_value(v),
                crate::analysis::format_value(b)
            ),
            (Some(v), None) => format!(" (latest {})", crate::analysis::format_value(v)),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "  drift:  {} of {} in {} of {} analyses{values}",
            d.check, d.backend, d.count, pc.analyses
        );
    }
    out
}

/// The rollout's steps with where the migration stands: `5% done -> 20% <- now -> 50% next
/// -> 100%`. Without a migration in progress no step is marked.
pub fn steps_line(steps: &[i32], current: Option<i32>, migrating: bool) -> String {
    let current = current.unwrap_or(0);
    steps
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let i = i as i32 + 1;
            let mark = match i {
                _ if !migrating => "",
                i if i < current => " done",
                i if i == current => " <- now",
                i if i == current + 1 => " next",
                _ => "",
            };
            format!("{p}%{mark}")
        })
        .collect::<Vec<_>>()
        .join(" -> ")
}

/// Splits `total` units in proportion to `weights`, by largest remainder (ties to the
/// earlier entry), so the parts always add up to exactly `total` whatever the weights sum to.
pub fn apportion(weights: &[u64], total: u64) -> Vec<u64> {
    let sum: u64 = weights.iter().sum();
    if sum == 0 {
        return vec![0; weights.len()];
    }
    let mut parts: Vec<u64> = weights.iter().map(|w| w * total / sum).collect();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    // Stable sort: equal remainders keep their order.
    order.sort_by_key(|&i| std::cmp::Reverse(weights[i] * total % sum));
    let short = total - parts.iter().sum::<u64>();
    for &i in order.iter().take(short as usize) {
        parts[i] += 1;
    }
    parts
}

/// One bar per backend of the split the gateway applies: its share in percent (one decimal;
/// the shares add up to 100.0) and its cells of a `BAR_WIDTH` bar (the cells add up to the
/// width), so the bars read as one 100% split.
pub fn weight_bars(weights: &[WeightedBackend]) -> String {
    let raw: Vec<u64> = weights.iter().map(|w| w.weight.max(0) as u64).collect();
    let tenths = apportion(&raw, 1000);
    let cells = apportion(&raw, BAR_WIDTH as u64);
    let mut table = Table::new(["backend", "share", "bar"]).compact();
    for ((w, t), c) in weights.iter().zip(&tenths).zip(&cells) {
        let c = *c as usize;
        table.row([
            w.name.clone(),
            format!("{:>3}.{}%", t / 10, t % 10),
            format!("[{}{}]", "#".repeat(c), ".".repeat(BAR_WIDTH - c)),
        ]);
    }
    table.render_rows("  ")
}

/// The last analysis: each check's value against its threshold, and its verdict.
fn analysis(a: &AnalysisResult, now: Timestamp) -> String {
    let mut out = format!(
        "Last analysis ({}, window {}): {:?}\n",
        ago(now, a.time.0),
        a.window.as_ref().map_or("-", |w| w.0.as_str()),
        a.verdict
    );
    let mut table = Table::new(["check", "value", "threshold", "verdict"]).compact();
    for c in &a.checks {
        let name = match &c.backend {
            Some(b) => format!("{} [{b}]", c.name),
            None => c.name.clone(),
        };
        let verdict = match &c.reason {
            Some(r) => format!("{:?} ({r})", c.verdict),
            None => format!("{:?}", c.verdict),
        };
        table.row([
            name,
            c.value.map_or("no data".into(), |v| format!("{v:.4}")),
            c.threshold.clone(),
            verdict,
        ]);
    }
    if !table.is_empty() {
        out.push_str(&table.render("  "));
    }
    out
}

/// The route's history, newest last: its conditions by when they last changed, its finished
/// migrations, and its most recent Events.
fn history(st: &ModelRouteStatus, view: &View, now: Timestamp) -> String {
    let mut out = String::new();
    if !st.conditions.is_empty() {
        out.push_str("Conditions:\n");
        let mut conditions: Vec<_> = st.conditions.iter().collect();
        conditions.sort_by_key(|c| c.last_transition_time.0);
        let mut table = Table::new(["type", "status", "reason", "since", "message"]).compact();
        for c in conditions {
            table.row([
                c.type_.clone(),
                c.status.clone(),
                c.reason.clone(),
                ago(now, c.last_transition_time.0),
                c.message.clone(),
            ]);
        }
        out.push_str(&table.render("  "));
    }
    if !st.history.is_empty() {
        out.push_str("Migrations (newest last):\n");
        let mut table = Table::new(["finished", "from", "to", "outcome"]).compact();
        for h in &st.history {
            table.row([
                ago(now, h.finished_at.0),
                weights_summary(&h.from),
                weights_summary(&h.to),
                match &h.reason {
                    Some(r) => format!("{}: {r}", h.outcome.as_str()),
                    None => h.outcome.as_str().to_string(),
                },
            ]);
        }
        out.push_str(&table.render("  "));
    }
    if let Some(e) = view.events_error {
        let _ = writeln!(out, "Events:   not shown: {e}");
        return out;
    }
    let uid = view.route.uid();
    let mut events: Vec<&RouteEvent> = view
        .events
        .iter()
        .filter(|e| uid.is_none() || e.uid.is_none() || e.uid == uid)
        .collect();
    events.sort_by_key(|e| e.time);
    if events.is_empty() {
        out.push_str("Events:   none\n");
        return out;
    }
    let shown = &events[events.len().saturating_sub(MAX_EVENTS)..];
    let _ = writeln!(
        out,
        "Events (newest last{}):",
        if shown.len() < events.len() {
            format!(", {} of {}", shown.len(), events.len())
        } else {
            String::new()
        }
    );
    let mut table = Table::new(["last seen", "type", "reason", "message"]).compact();
    for e in shown {
        let message = if e.count > 1 {
            format!("{} (x{})", e.message, e.count)
        } else {
            e.message.clone()
        };
        table.row([ago(now, e.time), e.kind.clone(), e.reason.clone(), message]);
    }
    out.push_str(&table.render("  "));
    out
}
