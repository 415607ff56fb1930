//! The migration state machine. Pure: from the route's spec and status, which backends are
//! missing or not Ready, a fresh analysis (if one ran), an operator command and `now`, it
//! computes the next status and the Events to publish. Everything it decides lives in
//! status, so a restarted controller resumes at the same step and never jumps weights.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::blend::blend;
use super::commands::Command;
use super::gate::{Gate, gate};
use super::health;
use super::post_cutover;
use super::settings::{Settings, effective_rollout, settings};
use super::split::{gaining, new_backends, normalize, same_split, weights_summary};
use crate::api::{
    AnalysisResult, EvaluationStatus, EvaluationVerdict, InconclusivePolicy, MigrationOutcome,
    MigrationRecord, MirrorStatus, ModelRouteSpec, ModelRouteStatus, Phase, Verdict,
};

/// Most migrations kept in `status.history`.
pub const HISTORY_LIMIT: usize = 10;

/// Whether the controller has a Prometheus to judge steps by. Without one nothing that needs
/// judging starts: a migration holds before step 1 (or mirroring) and says what to set,
/// rather than holding for `maxHold` and rolling back as if the new backend were at fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnalysisSource {
    Configured,
    NotConfigured,
}

pub struct Inputs<'a> {
    pub spec: &'a ModelRouteSpec,
    pub status: &'a ModelRouteStatus,
    pub generation: Option<i64>,
    /// Backends named in `spec.backends` or `spec.fallback` that do not exist.
    pub missing: &'a [String],
    /// Backends of the desired split that exist but are not Ready.
    pub not_ready: &'a [String],
    /// Backends the post-cutover shadow copies to that no longer exist or are being deleted.
    pub shadow_gone: &'a [String],
    pub prometheus: AnalysisSource,
    /// A fresh analysis of the current step, when one was due and ran.
    pub analysis: Option<AnalysisResult>,
    /// A fresh replay of the evaluation set, when one was due and ran.
    pub evaluation: Option<EvaluationStatus>,
    pub command: Option<Command>,
    pub now: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
}

impl Event {
    pub(super) fn normal(reason: &'static str, message: String) -> Self {
        Event {
            warning: false,
            reason,
            message,
        }
    }

    pub(super) fn warning(reason: &'static str, message: String) -> Self {
        Event {
            warning: true,
            reason,
            message,
        }
    }
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

pub(super) fn ts(t: &Option<Time>) -> Option<Timestamp> {
    t.as_ref().map(|t| t.0)
}

pub(super) fn after(t: Timestamp, d: Duration) -> Timestamp {
    let span = k8s_openapi::jiff::SignedDuration::try_from(d)
        .unwrap_or(k8s_openapi::jiff::SignedDuration::MAX);
    t.checked_add(span).unwrap_or(t)
}

fn until(now: Timestamp, t: Timestamp) -> Duration {
    Duration::try_from(t.duration_since(now)).unwrap_or(Duration::ZERO)
}

/// Whether an analysis is due now, and of what. A paused migration is still analysed: a
/// failure rolls it back (as in Argo Rollouts), it just does not advance.
pub fn analysis_due(
    spec: &ModelRouteSpec,
    status: &ModelRouteStatus,
    now: Timestamp,
) -> Option<AnalysisPlan> {
    if let Some(plan) = post_cutover::analysis_due(spec, status, now) {
        return Some(plan);
    }
    let phase = status.phase?;
    if status.target.is_empty() || status.step.is_none() {
        return None;
    }
    let mirror = phase == Phase::Mirroring || (phase == Phase::Paused && status.mirror.is_some());
    if !mirror && status.step == Some(0) {
        return None; // before step 1 nothing of the target is live yet
    }
    let interval = settings(spec, status).interval();
    let step_start = ts(&status.step_started_at)?;
    let from = match status.last_analysis.as_ref().map(|a| a.time.0) {
        Some(l) if l > step_start => l,
        _ => step_start,
    };
    if now < after(from, interval) {
        return None;
    }
    let gaining = if mirror {
        new_backends(&status.stable, &status.target)
    } else {
        gaining(&status.stable, &status.weights)
    };
    // The baseline is what the stable split still serves live in this window: at the last
    // step of a full cutover nothing, and relative checks have nothing to compare with.
    let live = |name: &str| {
        mirror
            || status
                .weights
                .iter()
                .any(|w| w.name == name && w.weight > 0)
    };
    Some(AnalysisPlan {
        gaining,
        baseline: status
            .stable
            .iter()
            .filter(|s| live(&s.name))
            .map(|s| s.name.clone())
            .collect(),
        mirror,
    })
}

/// The next status of a route.
pub fn decide(inputs: Inputs<'_>) -> Decision {
    let Inputs {
        spec,
        status,
        generation,
        missing,
        not_ready,
        shadow_gone,
        prometheus,
        analysis,
        evaluation,
        command,
        now,
    } = inputs;
    let mut st = status.clone();
    let mut events = vec![];
    st.observed_generation = generation;
    let desired = &spec.backends;
    let analysis = post_cutover::observe(&mut st, desired, shadow_gone, analysis, now, &mut events);

    // A new route takes its split at once: there is nothing to migrate from.
    if st.stable.is_empty() && missing.is_empty() {
        st.stable = desired.clone();
        st.phase = Some(Phase::Stable);
    }

    if let Some(cmd) = command.filter(|c| st.last_command.as_deref() != Some(&c.id)) {
        let cfg = settings(spec, &st);
        let result = super::operator::apply_command(&mut st, &cfg, cmd.kind, now, &mut events);
        st.last_command = Some(cmd.id);
        st.last_command_result = Some(result.message(cmd.kind));
    }

    if !st.target.is_empty() && !same_split(desired, &st.target) {
        // Spec changed mid-migration: back to stable, then towards the new split.
        finish(
            &mut st,
            now,
            MigrationOutcome::Superseded,
            Some("spec.backends changed during the migration".into()),
        );
        events.push(Event::normal(
            "MigrationSuperseded",
            format!(
                "spec changed mid-migration; restarting from {}",
                weights_summary(&st.stable)
            ),
        ));
    }
    if !same_split(desired, &st.rolled_back) {
        st.rolled_back.clear();
    }
    // A migration starts only when some backend's share grows (50/50 -> 1/1 is no
    // migration) and every backend it names exists.
    if st.target.is_empty()
        && st.rolled_back.is_empty()
        && missing.is_empty()
        && !st.stable.is_empty()
        && !gaining(&st.stable, desired).is_empty()
    {
        start(&mut st, spec, now, &mut events);
    }

    if !st.target.is_empty() {
        let cfg = settings(spec, &st);
        progress(
            &mut st,
            &cfg,
            missing,
            not_ready,
            prometheus,
            (analysis, evaluation),
            now,
            &mut events,
        );
    }
    if st.target.is_empty() {
        if st.rolled_back.is_empty() {
            st.phase = Some(Phase::Stable);
        }
        st.step = None;
        st.step_started_at = None;
        st.mirror = post_cutover::mirror(&st);
        st.rollout = None;
        st.target_not_ready_since = None;
        st.weights = normalize(&st.stable);
    }

    let cfg = settings(spec, &st);
    health::set_conditions(&mut st, spec, missing, prometheus, generation, now);
    st.weights_summary = Some(weights_summary(&st.weights));
    st.step_summary = match (st.phase, st.step) {
        (Some(Phase::Mirroring), _) => Some("mirror".into()),
        (_, Some(s)) if s > 0 => Some(format!("{s}/{} ({}%)", cfg.steps.len(), cfg.percent(s))),
        _ => None,
    };
    let requeue = next_wake(&st, &cfg, now);
    Decision {
        status: st,
        events,
        requeue,
    }
}

fn start(
    st: &mut ModelRouteStatus,
    spec: &ModelRouteSpec,
    now: Timestamp,
    events: &mut Vec<Event>,
) {
    st.target = spec.backends.clone();
    st.rollout = Some(effective_rollout(spec));
    st.migration_started_at = Some(Time(now));
    st.step = Some(0);
    st.step_started_at = Some(Time(now));
    st.failures = None;
    st.holding_since = None;
    st.target_not_ready_since = None;
    st.last_analysis = None;
    st.evaluation = None;
    st.paused = false;
    st.phase = Some(Phase::Progressing);
    events.push(Event::normal(
        "MigrationStarted",
        format!(
            "migrating {} → {}",
            weights_summary(&st.stable),
            weights_summary(&spec.backends)
        ),
    ));
}

#[allow(clippy::too_many_arguments)]
fn progress(
    st: &mut ModelRouteStatus,
    cfg: &Settings,
    missing: &[String],
    not_ready: &[String],
    prometheus: AnalysisSource,
    (analysis, evaluation): (Option<AnalysisResult>, Option<EvaluationStatus>),
    now: Timestamp,
    events: &mut Vec<Event>,
) {
    let step = st.step.unwrap_or(0);
    let mirroring = st.mirror.is_some();
    let targets = gaining(&st.stable, &st.target);

    // A backend the migration moves traffic to no longer exists: the migration failed.
    if let Some(gone) = st.target.iter().find(|t| missing.contains(&t.name)) {
        let why = format!(
            "InferenceBackend {:?} of the target split does not exist",
            gone.name
        );
        rollback(st, now, MigrationOutcome::RolledBack, why, events);
        return;
    }

    if let Some(e) = evaluation {
        events.push(match e.verdict {
            EvaluationVerdict::Pass => Event::normal("EvaluationPassed", e.message.clone()),
            EvaluationVerdict::Fail => Event::warning("EvaluationFailed", e.message.clone()),
            EvaluationVerdict::Error => Event::warning("EvaluationError", e.message.clone()),
        });
        st.evaluation = Some(e);
    }
    if let Gate::Failed(why) = gate(cfg, st, step) {
        rollback(st, now, MigrationOutcome::RolledBack, why, events);
        return;
    }

    let Some(started) = ts(&st.step_started_at) else {
        return;
    };
    // A migration that cannot advance ends; time spent paused does not count (resume
    // restarts the step's clock).
    let deadline = after(
        after(started, cfg.phase_duration(mirroring, step)),
        cfg.progress_deadline,
    );
    if !st.paused && now >= deadline {
        let waiting = if step == 0 && !mirroring && prometheus == AnalysisSource::NotConfigured {
            "waiting for a Prometheus to be configured".to_owned()
        } else if step == 0 && !mirroring {
            format!(
                "waiting for {} to become Ready",
                names(&intersect(&targets, not_ready))
            )
        } else {
            format!("at step {step}")
        };
        let why = format!(
            "no progress within progressDeadline {} ({waiting})",
            crate::duration::format(cfg.progress_deadline)
        );
        rollback(
            st,
            now,
            MigrationOutcome::ProgressDeadlineExceeded,
            why,
            events,
        );
        return;
    }

    // Before step 1, targets must be Ready; nothing moves until they are.
    if step == 0 && !mirroring {
        if st.paused {
            return;
        }
        if !missing.is_empty()
            || !not_ready.is_empty()
            || prometheus == AnalysisSource::NotConfigured
        {
            st.phase = Some(Phase::Holding);
            return;
        }
        // The evaluation set is replayed now that the targets are Ready; nothing moves, not
        // even mirrored copies, until it passed.
        if gate(cfg, st, 0) == Gate::Waiting {
            st.phase = Some(Phase::Holding);
            return;
        }
        let new = new_backends(&st.stable, &st.target);
        match cfg.mirror {
            // Mirroring needs a backend that carries no traffic yet to copy requests to.
            Some((percent, _)) if !new.is_empty() => {
                st.phase = Some(Phase::Mirroring);
                st.step_started_at = Some(Time(now));
                st.mirror = Some(MirrorStatus {
                    percent,
                    backends: new.clone(),
                });
                events.push(Event::normal(
                    "MirrorStarted",
                    format!("mirroring {percent}% of requests to {}", new.join(", ")),
                ));
            }
            _ => {
                advance_to(st, cfg, 1, now);
                events.push(step_event(st, cfg));
            }
        }
        return;
    }

    // A backend gaining traffic that stops being Ready holds the step, and fails the
    // migration when it stays so beyond the grace (a replaced pod is not a failure).
    let unready = intersect(&targets, not_ready);
    if unready.is_empty() {
        st.target_not_ready_since = None;
    } else {
        let since = ts(&st.target_not_ready_since).unwrap_or(now);
        st.target_not_ready_since = Some(Time(since));
        if now >= after(since, cfg.not_ready_grace()) {
            let why = format!(
                "{} stopped being Ready mid-migration and stayed so for {}",
                names(&unready),
                crate::duration::format(cfg.not_ready_grace())
            );
            rollback(st, now, MigrationOutcome::RolledBack, why, events);
            return;
        }
    }

    if let Some(result) = analysis {
        let summary = crate::analysis::summary(&result);
        match result.verdict {
            Verdict::Pass => {
                st.holding_since = None;
                events.push(Event::normal("AnalysisPassed", summary));
            }
            Verdict::Fail => {
                let failures = st.failures.unwrap_or(0) + 1;
                st.failures = Some(failures);
                events.push(Event::warning("AnalysisFailed", summary.clone()));
                if failures > cfg.analysis.failure_limit {
                    st.last_analysis = Some(result);
                    let why = format!("analysis failed {failures} time(s): {summary}");
                    rollback(st, now, MigrationOutcome::RolledBack, why, events);
                    return;
                }
            }
            Verdict::Inconclusive => {
                events.push(Event::normal("AnalysisInconclusive", summary.clone()));
                // Paused: nothing is waiting on the verdict, so holding does not count.
                if !st.paused {
                    let since = ts(&st.holding_since).unwrap_or(now);
                    st.holding_since = Some(Time(since));
                    let held_too_long = now >= after(since, cfg.max_hold());
                    if cfg.analysis.on_inconclusive == InconclusivePolicy::Rollback || held_too_long
                    {
                        st.last_analysis = Some(result);
                        let why = if held_too_long {
                            format!("inconclusive for longer than maxHold: {summary}")
                        } else {
                            format!("inconclusive and onInconclusive is Rollback: {summary}")
                        };
                        rollback(st, now, MigrationOutcome::RolledBack, why, events);
                        return;
                    }
                }
            }
        }
        st.last_analysis = Some(result);
    }
    if st.paused {
        st.phase = Some(Phase::Paused);
        return;
    }
    let holding = !unready.is_empty()
        || st
            .last_analysis
            .as_ref()
            .is_some_and(|a| a.verdict == Verdict::Inconclusive);
    st.phase = Some(match (mirroring, holding) {
        (true, _) => Phase::Mirroring,
        (false, true) => Phase::Holding,
        (false, false) => Phase::Progressing,
    });
    if !unready.is_empty() {
        return;
    }

    // Advance when the step has lasted long enough and the latest analysis passed with its
    // whole window inside this step (and at least one interval into it).
    let judged = st.last_analysis.as_ref().is_some_and(|a| {
        let window = a
            .window
            .as_ref()
            .and_then(|w| w.parse().ok())
            .unwrap_or(Duration::ZERO);
        a.verdict == Verdict::Pass && a.time.0 >= after(started, window.max(cfg.interval()))
    });
    let evaluated = mirroring || gate(cfg, st, step) == Gate::Open;
    if now >= after(started, cfg.phase_duration(mirroring, step)) && judged && evaluated {
        if mirroring {
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

fn intersect(a: &[String], b: &[String]) -> Vec<String> {
    a.iter().filter(|x| b.contains(x)).cloned().collect()
}

fn names(ns: &[String]) -> String {
    ns.join(", ")
}

fn step_event(st: &ModelRouteStatus, cfg: &Settings) -> Event {
    let step = st.step.unwrap_or(0);
    Event::normal(
        "StepAdvanced",
        format!(
            "step {step}/{} ({}%): {}",
            cfg.steps.len(),
            cfg.percent(step),
            weights_summary(&st.weights)
        ),
    )
}

pub(super) fn advance_to(st: &mut ModelRouteStatus, cfg: &Settings, step: i32, now: Timestamp) {
    st.step = Some(step);
    st.step_started_at = Some(Time(now));
    st.weights = blend(&st.stable, &st.target, cfg.percent(step));
    st.mirror = None;
    st.failures = None;
    st.holding_since = None;
    st.phase = Some(if st.paused {
        Phase::Paused
    } else {
        Phase::Progressing
    });
}

pub(super) fn promote(
    st: &mut ModelRouteStatus,
    now: Timestamp,
    why: &str,
    events: &mut Vec<Event>,
) {
    let (from, target) = (st.stable.clone(), st.target.clone());
    let shadow = st
        .rollout
        .as_ref()
        .and_then(|r| r.post_cutover_shadow.clone());
    finish(st, now, MigrationOutcome::Promoted, Some(why.to_owned()));
    st.stable = target;
    st.weights = normalize(&st.stable);
    st.phase = Some(Phase::Stable);
    events.push(Event::normal(
        "Promoted",
        format!("{} is now stable: {why}", weights_summary(&st.stable)),
    ));
    post_cutover::begin(st, &from, shadow.as_ref(), now, events);
}

pub(super) fn rollback(
    st: &mut ModelRouteStatus,
    now: Timestamp,
    outcome: MigrationOutcome,
    why: String,
    events: &mut Vec<Event>,
) {
    let target = st.target.clone();
    finish(st, now, outcome, Some(why.clone()));
    st.rolled_back = target;
    st.phase = Some(Phase::RolledBack);
    events.push(Event::warning(
        "RolledBack",
        format!("back to {}: {why}", weights_summary(&st.stable)),
    ));
}

/// Ends the current migration and records it in the bounded history.
fn finish(
    st: &mut ModelRouteStatus,
    now: Timestamp,
    outcome: MigrationOutcome,
    reason: Option<String>,
) {
    if st.target.is_empty() {
        return;
    }
    st.history.push(MigrationRecord {
        from: st.stable.clone(),
        to: st.target.clone(),
        outcome,
        started_at: st.migration_started_at.clone().unwrap_or(Time(now)),
        finished_at: Time(now),
        reason,
        post_cutover: None,
    });
    if st.history.len() > HISTORY_LIMIT {
        let excess = st.history.len() - HISTORY_LIMIT;
        st.history.drain(..excess);
    }
    st.target.clear();
    st.weights = normalize(&st.stable);
    st.rollout = None;
    st.migration_started_at = None;
    st.step = None;
    st.step_started_at = None;
    st.failures = None;
    st.holding_since = None;
    st.target_not_ready_since = None;
    st.mirror = None;
    st.paused = false;
}

fn next_wake(st: &ModelRouteStatus, cfg: &Settings, now: Timestamp) -> Option<Duration> {
    if st.target.is_empty() {
        return post_cutover::next_wake(st, cfg.interval(), now);
    }
    let interval = cfg.interval();
    let started = ts(&st.step_started_at).unwrap_or(now);
    let last = st
        .last_analysis
        .as_ref()
        .map(|a| a.time.0)
        .filter(|l| *l > started)
        .unwrap_or(started);
    let mirroring = st.mirror.is_some();
    let step = st.step.unwrap_or(0);
    let mut wakes = vec![after(last, interval)];
    if !st.paused {
        let end = after(started, cfg.phase_duration(mirroring, step));
        wakes.push(end);
        wakes.push(after(end, cfg.progress_deadline));
    }
    if let Some(since) = ts(&st.target_not_ready_since) {
        wakes.push(after(since, cfg.not_ready_grace()));
    }
    let wake = wakes.into_iter().filter(|w| *w > now).min().unwrap_or(now);
    // Waiting for targets to become Ready is driven by the backend watch; poll as a backstop.
    let d = if step == 0 && st.phase == Some(Phase::Holding) {
        until(now, wake).min(Duration::from_secs(5))
    } else {
        until(now, wake)
    };
    Some(d.max(Duration::from_millis(500)))
}
