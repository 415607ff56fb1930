//! The migration state machine. Pure: from the route's spec and status, which target
//! backends are not ready, a fresh analysis (if one ran), an operator command and `now`, it
//! computes the next status and the Events to publish. Everything it decides lives in
//! status, so a restarted controller resumes at the same step and never jumps weights.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::blend::{blend, gaining};
use crate::api::{
    Analysis, AnalysisResult, InconclusivePolicy, MigrationRecord, MirrorStatus, ModelRouteSpec,
    ModelRouteStatus, Phase, Verdict, WeightedBackend, condition,
};
use crate::controller::conditions::{self, Desired};
use crate::controller::{same_split, weights_summary};

/// Most migrations kept in `status.history`.
pub const HISTORY_LIMIT: usize = 10;
const DEFAULT_STEPS: [i32; 4] = [5, 20, 50, 100];
const DEFAULT_STEP_DURATION: Duration = Duration::from_secs(600);

/// An imperative action from `kubectl switchyard`, carried by annotations (never spec).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub id: String,
    pub kind: CommandKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandKind {
    /// Skip to the next step now.
    Promote,
    /// Skip to the desired split now.
    PromoteFull,
    Abort,
    Pause,
    Resume,
    /// Try a rolled-back split again.
    Retry,
}

impl CommandKind {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "promote" => CommandKind::Promote,
            "promote-full" => CommandKind::PromoteFull,
            "abort" => CommandKind::Abort,
            "pause" => CommandKind::Pause,
            "resume" => CommandKind::Resume,
            "retry" => CommandKind::Retry,
            _ => return None,
        })
    }
}

pub struct Inputs<'a> {
    pub spec: &'a ModelRouteSpec,
    pub status: &'a ModelRouteStatus,
    pub generation: Option<i64>,
    /// Backends of the desired split that are not Ready.
    pub not_ready: &'a [String],
    /// A fresh analysis of the current step, when one was due and ran.
    pub analysis: Option<AnalysisResult>,
    pub command: Option<Command>,
    pub now: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub status: ModelRouteStatus,
    pub events: Vec<Event>,
    /// When to look again, if no watch event comes first.
    pub requeue: Option<Duration>,
}

/// What an analysis must judge now, if one is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalysisPlan {
    pub gaining: Vec<String>,
    pub baseline: Vec<String>,
    pub mirror: bool,
}

/// The rollout settings with defaults filled in.
pub struct Settings {
    pub steps: Vec<i32>,
    pub step_duration: Duration,
    pub analysis: Analysis,
    pub mirror: Option<(i32, Duration)>,
}

impl Settings {
    /// The analysis interval (admission guarantees it parses; 1m otherwise).
    fn interval(&self) -> Duration {
        self.analysis
            .interval
            .parse()
            .unwrap_or(Duration::from_secs(60))
    }

    /// How long the current phase lasts at least: the mirror phase or one step.
    fn phase_duration(&self, mirroring: bool) -> Duration {
        if mirroring {
            self.mirror.map_or(Duration::ZERO, |m| m.1)
        } else {
            self.step_duration
        }
    }
}

/// Backends of the target split that carry no traffic in the stable one: what a mirror
/// phase copies requests to and judges.
fn new_backends(st: &ModelRouteStatus) -> Vec<String> {
    st.target
        .iter()
        .filter(|t| !st.stable.iter().any(|s| s.name == t.name))
        .map(|t| t.name.clone())
        .collect()
}

pub fn settings(spec: &ModelRouteSpec) -> Settings {
    let r = spec.rollout.as_ref();
    let steps = r
        .map(|r| r.steps.clone())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| DEFAULT_STEPS.to_vec());
    let step_duration = r
        .and_then(|r| r.step_duration.parse().ok())
        .unwrap_or(DEFAULT_STEP_DURATION);
    let analysis = r
        .and_then(|r| r.analysis.clone())
        .unwrap_or_else(default_analysis);
    let mirror = r
        .and_then(|r| r.mirror.as_ref())
        .and_then(|m| Some((m.percent, m.duration.parse().ok()?)));
    Settings {
        steps,
        step_duration,
        analysis,
        mirror,
    }
}

fn default_analysis() -> Analysis {
    serde_json::from_value(serde_json::json!({})).expect("every Analysis field has a default")
}

fn ts(t: &Option<Time>) -> Option<Timestamp> {
    t.as_ref().map(|t| t.0)
}

fn after(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(jiff_span(d)).unwrap_or(t)
}

fn jiff_span(d: Duration) -> k8s_openapi::jiff::SignedDuration {
    k8s_openapi::jiff::SignedDuration::try_from(d).unwrap_or(k8s_openapi::jiff::SignedDuration::MAX)
}

fn until(now: Timestamp, t: Timestamp) -> Duration {
    Duration::try_from(t.duration_since(now)).unwrap_or(Duration::ZERO)
}

/// Whether an analysis is due now, and of what.
pub fn analysis_due(
    spec: &ModelRouteSpec,
    status: &ModelRouteStatus,
    now: Timestamp,
) -> Option<AnalysisPlan> {
    let phase = status.phase?;
    if status.paused || status.target.is_empty() {
        return None;
    }
    let mirror = phase == Phase::Mirroring;
    if !(mirror || matches!(phase, Phase::Progressing | Phase::Holding)) || status.step.is_none() {
        return None;
    }
    if !mirror && status.step == Some(0) {
        return None; // holding before step 1: nothing of the target is live yet
    }
    let interval = settings(spec).analysis.interval.parse().ok()?;
    let step_start = ts(&status.step_started_at)?;
    let last = status.last_analysis.as_ref().map(|a| a.time.0);
    let from = match last {
        Some(l) if l > step_start => l,
        _ => step_start,
    };
    if now < after(from, interval) {
        return None;
    }
    let gaining = if mirror {
        new_backends(status)
    } else {
        gaining(&status.stable, &status.weights)
    };
    Some(AnalysisPlan {
        gaining,
        baseline: status.stable.iter().map(|s| s.name.clone()).collect(),
        mirror,
    })
}

/// The next status of a route whose backends all exist.
pub fn decide(inputs: Inputs<'_>) -> Decision {
    let Inputs {
        spec,
        status,
        generation,
        not_ready,
        analysis,
        command,
        now,
    } = inputs;
    let cfg = settings(spec);
    let mut st = status.clone();
    let mut events = vec![];
    st.observed_generation = generation;
    let desired = &spec.backends;

    // A new route takes its split at once: there is nothing to migrate from.
    if st.stable.is_empty() {
        st.stable = desired.clone();
        st.weights = desired.clone();
        st.phase = Some(Phase::Stable);
    }

    if let Some(cmd) = command.filter(|c| st.last_command.as_deref() != Some(&c.id)) {
        st.last_command = Some(cmd.id.clone());
        apply_command(&mut st, &cfg, cmd.kind, now, &mut events);
    }

    let active = !st.target.is_empty();
    if active && !same_split(desired, &st.target) {
        // Spec changed mid-migration: back to stable, then towards the new split.
        finish(
            &mut st,
            now,
            "Superseded",
            Some("spec.backends changed during the migration".into()),
        );
        st.weights = st.stable.clone();
        events.push(Event {
            warning: false,
            reason: "MigrationSuperseded",
            message: format!(
                "spec changed mid-migration; restarting from {}",
                weights_summary(&st.stable)
            ),
        });
    }
    if !same_split(desired, &st.rolled_back) {
        st.rolled_back.clear();
    }
    if st.target.is_empty() && !same_split(desired, &st.stable) && st.rolled_back.is_empty() {
        st.target = desired.clone();
        st.migration_started_at = Some(Time(now));
        st.step = Some(0);
        st.step_started_at = Some(Time(now));
        st.failures = None;
        st.holding_since = None;
        st.last_analysis = None;
        st.paused = false;
        events.push(Event {
            warning: false,
            reason: "MigrationStarted",
            message: format!(
                "migrating {} → {}",
                weights_summary(&st.stable),
                weights_summary(desired)
            ),
        });
    }

    if !st.target.is_empty() && !st.paused {
        progress(&mut st, &cfg, not_ready, analysis, now, &mut events);
    }
    if st.target.is_empty() && st.rolled_back.is_empty() && !st.paused {
        st.phase = Some(Phase::Stable);
        st.step = None;
        st.step_started_at = None;
        st.mirror = None;
    }

    set_conditions(&mut st, desired, generation, now);
    st.weights_summary = Some(weights_summary(&st.weights));
    st.step_summary = st.step.filter(|s| *s > 0).map(|s| {
        let pct = cfg.steps.get(s as usize - 1).copied().unwrap_or(100);
        format!("{s}/{} ({pct}%)", cfg.steps.len())
    });
    if st.phase == Some(Phase::Mirroring) {
        st.step_summary = Some("mirror".into());
    }
    let requeue = next_wake(&st, &cfg, now);
    Decision {
        status: st,
        events,
        requeue,
    }
}

fn apply_command(
    st: &mut ModelRouteStatus,
    cfg: &Settings,
    kind: CommandKind,
    now: Timestamp,
    events: &mut Vec<Event>,
) {
    let active = !st.target.is_empty();
    match kind {
        CommandKind::Pause if active && !st.paused => {
            st.paused = true;
            st.phase = Some(Phase::Paused);
            events.push(Event {
                warning: false,
                reason: "Paused",
                message: "migration paused by an operator".into(),
            });
        }
        CommandKind::Resume if st.paused => {
            st.paused = false;
            st.phase = Some(Phase::Progressing);
            // The step's clock restarts: its full duration is observed after a pause.
            st.step_started_at = Some(Time(now));
            events.push(Event {
                warning: false,
                reason: "Resumed",
                message: "migration resumed by an operator".into(),
            });
        }
        CommandKind::Promote if active => {
            let step = st.step.unwrap_or(0);
            if step as usize >= cfg.steps.len() {
                promote(st, now, "promoted by an operator", events);
            } else {
                advance_to(st, cfg, step + 1, now);
                events.push(Event {
                    warning: false,
                    reason: "StepAdvanced",
                    message: format!(
                        "an operator promoted to step {} ({})",
                        step + 1,
                        weights_summary(&st.weights)
                    ),
                });
            }
        }
        CommandKind::PromoteFull if active => {
            promote(st, now, "fully promoted by an operator", events)
        }
        CommandKind::Abort if active => {
            rollback(st, now, "Aborted", "aborted by an operator".into(), events);
        }
        CommandKind::Retry if !st.rolled_back.is_empty() => {
            st.rolled_back.clear();
            events.push(Event {
                warning: false,
                reason: "Retried",
                message: "an operator asked to retry the migration".into(),
            });
        }
        _ => {}
    }
}

fn progress(
    st: &mut ModelRouteStatus,
    cfg: &Settings,
    not_ready: &[String],
    analysis: Option<AnalysisResult>,
    now: Timestamp,
    events: &mut Vec<Event>,
) {
    let step = st.step.unwrap_or(0);
    let mirroring = st.phase == Some(Phase::Mirroring);
    // Before step 1, targets must be Ready; nothing moves until they are.
    if step == 0 && !mirroring {
        if !not_ready.is_empty() {
            st.phase = Some(Phase::Holding);
            st.weights = st.stable.clone();
            return;
        }
        match cfg.mirror {
            Some((percent, _)) => {
                st.phase = Some(Phase::Mirroring);
                st.step_started_at = Some(Time(now));
                let gaining = new_backends(st);
                st.mirror = Some(MirrorStatus {
                    percent,
                    backends: gaining.clone(),
                });
                events.push(Event {
                    warning: false,
                    reason: "MirrorStarted",
                    message: format!("mirroring {percent}% of requests to {}", gaining.join(", ")),
                });
            }
            None => {
                advance_to(st, cfg, 1, now);
                events.push(step_event(st, cfg));
            }
        }
        return;
    }

    if let Some(result) = analysis {
        let summary = summarize(&result);
        match result.verdict {
            Verdict::Pass => {
                st.holding_since = None;
                st.phase = Some(if mirroring {
                    Phase::Mirroring
                } else {
                    Phase::Progressing
                });
                events.push(Event {
                    warning: false,
                    reason: "AnalysisPassed",
                    message: summary,
                });
            }
            Verdict::Fail => {
                let failures = st.failures.unwrap_or(0) + 1;
                st.failures = Some(failures);
                events.push(Event {
                    warning: true,
                    reason: "AnalysisFailed",
                    message: summary.clone(),
                });
                if failures > cfg.analysis.failure_limit {
                    st.last_analysis = Some(result);
                    rollback(
                        st,
                        now,
                        "RolledBack",
                        format!("analysis failed {failures} time(s): {summary}"),
                        events,
                    );
                    return;
                }
            }
            Verdict::Inconclusive => {
                events.push(Event {
                    warning: false,
                    reason: "AnalysisInconclusive",
                    message: summary.clone(),
                });
                let since = ts(&st.holding_since).unwrap_or(now);
                st.holding_since = Some(Time(since));
                let max_hold = cfg
                    .analysis
                    .max_hold
                    .parse()
                    .unwrap_or(Duration::from_secs(1800));
                let held_too_long = now >= after(since, max_hold);
                if cfg.analysis.on_inconclusive == InconclusivePolicy::Rollback || held_too_long {
                    st.last_analysis = Some(result);
                    let why = if held_too_long {
                        format!("inconclusive for longer than maxHold: {summary}")
                    } else {
                        format!("inconclusive and onInconclusive is Rollback: {summary}")
                    };
                    rollback(st, now, "RolledBack", why, events);
                    return;
                }
                if !mirroring {
                    st.phase = Some(Phase::Holding);
                }
            }
        }
        st.last_analysis = Some(result);
    }

    // Advance when the step has lasted long enough and the latest analysis, measured
    // entirely within this step, passed.
    let interval = cfg.interval();
    let Some(started) = ts(&st.step_started_at) else {
        return;
    };
    let duration = cfg.phase_duration(mirroring);
    let judged = st
        .last_analysis
        .as_ref()
        .is_some_and(|a| a.verdict == Verdict::Pass && a.time.0 >= after(started, interval));
    if now >= after(started, duration) && judged {
        if mirroring {
            st.mirror = None;
            advance_to(st, cfg, 1, now);
            events.push(step_event(st, cfg));
        } else if step as usize >= cfg.steps.len() {
            promote(st, now, "every step passed analysis", events);
        } else {
            advance_to(st, cfg, step + 1, now);
            events.push(step_event(st, cfg));
        }
    }
}

fn summarize(result: &AnalysisResult) -> String {
    result
        .checks
        .iter()
        .map(|c| {
            let value = c.value.map_or("no data".to_owned(), |v| format!("{v:.4}"));
            let why = c
                .reason
                .as_ref()
                .map_or(String::new(), |r| format!(", {r}"));
            format!(
                "{} {value} vs {} ({:?}{why})",
                c.name, c.threshold, c.verdict
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn step_event(st: &ModelRouteStatus, cfg: &Settings) -> Event {
    let step = st.step.unwrap_or(0);
    Event {
        warning: false,
        reason: "StepAdvanced",
        message: format!(
            "step {step}/{} ({}%): {}",
            cfg.steps.len(),
            cfg.steps.get(step as usize - 1).copied().unwrap_or(100),
            weights_summary(&st.weights)
        ),
    }
}

fn advance_to(st: &mut ModelRouteStatus, cfg: &Settings, step: i32, now: Timestamp) {
    let pct = cfg.steps.get(step as usize - 1).copied().unwrap_or(100);
    st.step = Some(step);
    st.step_started_at = Some(Time(now));
    st.weights = blend(&st.stable, &st.target, pct);
    st.failures = None;
    st.holding_since = None;
    st.phase = Some(Phase::Progressing);
}

fn promote(st: &mut ModelRouteStatus, now: Timestamp, why: &str, events: &mut Vec<Event>) {
    let target = st.target.clone();
    finish(st, now, "Promoted", Some(why.to_owned()));
    st.stable = target.clone();
    st.weights = target;
    st.phase = Some(Phase::Stable);
    events.push(Event {
        warning: false,
        reason: "Promoted",
        message: format!("{} is now stable: {why}", weights_summary(&st.stable)),
    });
}

fn rollback(
    st: &mut ModelRouteStatus,
    now: Timestamp,
    outcome: &'static str,
    why: String,
    events: &mut Vec<Event>,
) {
    let target = st.target.clone();
    finish(st, now, outcome, Some(why.clone()));
    st.weights = st.stable.clone();
    st.rolled_back = target;
    st.phase = Some(Phase::RolledBack);
    events.push(Event {
        warning: true,
        reason: "RolledBack",
        message: format!("back to {}: {why}", weights_summary(&st.stable)),
    });
}

/// Ends the current migration and records it in the bounded history.
fn finish(st: &mut ModelRouteStatus, now: Timestamp, outcome: &str, reason: Option<String>) {
    if st.target.is_empty() {
        return;
    }
    st.history.push(MigrationRecord {
        from: st.stable.clone(),
        to: st.target.clone(),
        outcome: outcome.to_owned(),
        started_at: st.migration_started_at.clone().unwrap_or(Time(now)),
        finished_at: Time(now),
        reason,
    });
    if st.history.len() > HISTORY_LIMIT {
        let excess = st.history.len() - HISTORY_LIMIT;
        st.history.drain(..excess);
    }
    st.target.clear();
    st.migration_started_at = None;
    st.step = None;
    st.step_started_at = None;
    st.failures = None;
    st.holding_since = None;
    st.mirror = None;
    st.paused = false;
}

fn set_conditions(
    st: &mut ModelRouteStatus,
    desired: &[WeightedBackend],
    generation: Option<i64>,
    now: Timestamp,
) {
    let phase = st.phase.unwrap_or(Phase::Stable);
    match phase {
        Phase::Stable if same_split(desired, &st.weights) => {
            conditions::set(
                &mut st.conditions,
                Desired::new(
                    condition::READY,
                    true,
                    "SplitInEffect",
                    "the desired split is fully in effect",
                ),
                generation,
                now,
            );
            conditions::remove(&mut st.conditions, condition::RECONCILING);
            conditions::remove(&mut st.conditions, condition::STALLED);
        }
        Phase::RolledBack => {
            let last = st.history.last();
            let (reason, msg) = match last {
                Some(h) if h.outcome == "Aborted" => {
                    ("Aborted", h.reason.clone().unwrap_or_default())
                }
                Some(h) => ("RolledBack", h.reason.clone().unwrap_or_default()),
                None => ("RolledBack", String::new()),
            };
            let message = format!(
                "{msg}; serving {}. Change spec or run `kubectl switchyard retry` to try again",
                weights_summary(&st.stable)
            );
            conditions::set(
                &mut st.conditions,
                Desired::new(condition::READY, false, reason, message.clone()),
                generation,
                now,
            );
            conditions::set(
                &mut st.conditions,
                Desired::new(condition::STALLED, true, reason, message),
                generation,
                now,
            );
            conditions::remove(&mut st.conditions, condition::RECONCILING);
        }
        _ => {
            let unreachable = st
                .last_analysis
                .as_ref()
                .is_some_and(crate::analysis::unreachable);
            let reason = match phase {
                Phase::Mirroring => "Mirroring",
                Phase::Holding if unreachable => "PrometheusUnreachable",
                Phase::Holding if st.step == Some(0) => "TargetNotReady",
                Phase::Holding => "Holding",
                Phase::Paused => "Paused",
                _ => "Progressing",
            };
            let message = format!(
                "migrating to {} (step {}), now {}",
                weights_summary(&st.target),
                st.step.unwrap_or(0),
                weights_summary(&st.weights)
            );
            conditions::set(
                &mut st.conditions,
                Desired::new(condition::READY, false, reason, message.clone()),
                generation,
                now,
            );
            conditions::set(
                &mut st.conditions,
                Desired::new(condition::RECONCILING, true, reason, message),
                generation,
                now,
            );
            conditions::remove(&mut st.conditions, condition::STALLED);
        }
    }
}

fn next_wake(st: &ModelRouteStatus, cfg: &Settings, now: Timestamp) -> Option<Duration> {
    if st.target.is_empty() || st.paused {
        return None;
    }
    let interval = cfg.interval();
    let started = ts(&st.step_started_at).unwrap_or(now);
    let last = st
        .last_analysis
        .as_ref()
        .map(|a| a.time.0)
        .filter(|l| *l > started)
        .unwrap_or(started);
    let mut wake = after(last, interval);
    let duration = cfg.phase_duration(st.phase == Some(Phase::Mirroring));
    let end = after(started, duration);
    if end > now && end < wake {
        wake = end;
    }
    // Waiting for targets to become Ready is driven by the backend watch; poll as a backstop.
    let d = if st.step == Some(0) && st.phase == Some(Phase::Holding) {
        Duration::from_secs(5)
    } else {
        until(now, wake)
    };
    Some(d.max(Duration::from_millis(500)))
}
