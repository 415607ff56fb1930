//! The quality gate: a migration's evaluation set must have passed for the current step
//! (before step 1 always, before later steps with `everyStep`) before it moves on. The
//! replay itself is the controller's; this decides when one is due and what its verdict
//! means for the migration.

use k8s_openapi::jiff::Timestamp;

use super::engine::ts;
use super::settings::{Settings, settings};
use super::split::new_backends;
use crate::api::{EvaluationStatus, EvaluationVerdict, ModelRouteSpec, ModelRouteStatus};

/// What a replay must cover now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvaluationPlan {
    pub step: i32,
    /// The stable split's backends: the baseline.
    pub stable: Vec<String>,
    /// The backends the migration moves to that are not in the stable split.
    pub new: Vec<String>,
}

/// Where the gate stands for the current step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Gate {
    /// No gate, or this step's replay passed.
    Open,
    /// This step's replay has not run, or could not run (`Error`): the step holds.
    Waiting,
    /// This step's replay failed: the migration rolls back, for this reason.
    Failed(String),
}

/// Whether the current step needs a replay at all.
fn gated(cfg: &Settings, st: &ModelRouteStatus, step: i32) -> bool {
    cfg.evaluation
        .as_ref()
        .is_some_and(|g| step == 0 || g.every_step)
        && !new_backends(&st.stable, &st.target).is_empty()
}

/// The replay of this migration's current step, if one ran.
fn current(st: &ModelRouteStatus, step: i32) -> Option<&EvaluationStatus> {
    let started = ts(&st.migration_started_at)?;
    st.evaluation
        .as_ref()
        .filter(|e| e.step == step && e.time.0 >= started)
}

pub(super) fn gate(cfg: &Settings, st: &ModelRouteStatus, step: i32) -> Gate {
    if !gated(cfg, st, step) {
        return Gate::Open;
    }
    match current(st, step) {
        Some(e) if e.verdict == EvaluationVerdict::Pass => Gate::Open,
        Some(e) if e.verdict == EvaluationVerdict::Fail => Gate::Failed(failure(e)),
        _ => Gate::Waiting,
    }
}

/// The rollback reason: the pass rates, then the first failing examples by name.
fn failure(e: &EvaluationStatus) -> String {
    let examples: Vec<String> = e
        .failing
        .iter()
        .filter(|f| {
            e.backends
                .iter()
                .any(|b| b.backend == f.backend && !b.stable)
        })
        .take(3)
        .map(|f| format!("{} on {}: {}", f.case, f.backend, f.reason))
        .collect();
    if examples.is_empty() {
        format!("evaluation failed: {}", e.message)
    } else {
        format!(
            "evaluation failed: {}; failing: {}",
            e.message,
            examples.join("; ")
        )
    }
}

/// Whether a replay is due now: the step is gated, its replay has not run (or ended in
/// `Error`, retried once an analysis interval has passed), the migration is not paused and
/// every backend gaining traffic is Ready (the caller passes `targets_ready`).
pub fn evaluation_due(
    spec: &ModelRouteSpec,
    st: &ModelRouteStatus,
    targets_ready: bool,
    now: Timestamp,
) -> Option<EvaluationPlan> {
    if st.target.is_empty() || st.paused || !targets_ready || st.mirror.is_some() {
        return None;
    }
    let step = st.step?;
    let cfg = settings(spec, st);
    if !gated(&cfg, st, step) {
        return None;
    }
    match current(st, step) {
        Some(e) if e.verdict != EvaluationVerdict::Error => return None,
        Some(e) if now < super::engine::after(e.time.0, cfg.interval()) => return None,
        _ => {}
    }
    Some(EvaluationPlan {
        step,
        stable: st.stable.iter().map(|b| b.name.clone()).collect(),
        new: new_backends(&st.stable, &st.target),
    })
}
