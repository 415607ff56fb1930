//! The rollout settings a migration runs with. They are snapshotted into `status.rollout`
//! when a migration starts, so editing `spec.rollout` mid-way (say steps [5,20,50,100] to
//! [50,100] at the 20% step) can never move weights by more than one step: the edit takes
//! effect with the next migration.

use std::time::Duration;

use crate::api::{Analysis, EvaluationGate, ModelRouteSpec, ModelRouteStatus, Rollout};

/// Fallbacks for values admission guarantees to parse; used only for objects written before
/// a rule existed.
const DEFAULT_STEP_DURATION: Duration = Duration::from_secs(600);
const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
const DEFAULT_MAX_HOLD: Duration = Duration::from_secs(1800);
const DEFAULT_PROGRESS_DEADLINE: Duration = Duration::from_secs(1800);

/// The rollout settings with defaults filled in and durations parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub steps: Vec<i32>,
    pub step_duration: Duration,
    pub analysis: Analysis,
    pub mirror: Option<(i32, Duration)>,
    pub evaluation: Option<EvaluationGate>,
    pub progress_deadline: Duration,
}

/// `spec.rollout` with every default filled in: what a migration snapshots.
pub fn effective_rollout(spec: &ModelRouteSpec) -> Rollout {
    let mut r = spec.rollout.clone().unwrap_or_default();
    if r.steps.is_empty() {
        r.steps = Rollout::default().steps;
    }
    r.analysis.get_or_insert_with(Analysis::default);
    r
}

/// The settings that govern `status`: the running migration's snapshot, else the spec's.
pub fn settings(spec: &ModelRouteSpec, status: &ModelRouteStatus) -> Settings {
    match &status.rollout {
        Some(snapshot) if !status.target.is_empty() => Settings::from_rollout(snapshot),
        _ => Settings::from_rollout(&effective_rollout(spec)),
    }
}

/// Whether `spec.rollout` now says something other than the running migration's snapshot.
pub fn edited_mid_migration(spec: &ModelRouteSpec, status: &ModelRouteStatus) -> bool {
    !status.target.is_empty()
        && status
            .rollout
            .as_ref()
            .is_some_and(|snapshot| *snapshot != effective_rollout(spec))
}

impl Settings {
    pub fn from_rollout(r: &Rollout) -> Self {
        Settings {
            steps: if r.steps.is_empty() {
                Rollout::default().steps
            } else {
                r.steps.clone()
            },
            step_duration: r.step_duration.parse().unwrap_or(DEFAULT_STEP_DURATION),
            analysis: r.analysis.clone().unwrap_or_default(),
            mirror: r
                .mirror
                .as_ref()
                .and_then(|m| Some((m.percent, m.duration.parse().ok()?))),
            evaluation: r.evaluation.clone(),
            progress_deadline: r
                .progress_deadline
                .parse()
                .unwrap_or(DEFAULT_PROGRESS_DEADLINE),
        }
    }

    /// How often analyses run.
    pub fn interval(&self) -> Duration {
        self.analysis.interval.parse().unwrap_or(DEFAULT_INTERVAL)
    }

    pub fn max_hold(&self) -> Duration {
        self.analysis.max_hold.parse().unwrap_or(DEFAULT_MAX_HOLD)
    }

    /// How long the current phase lasts at least: the mirror phase or one step. Waiting for
    /// the targets to become Ready (step 0) has no minimum.
    pub fn phase_duration(&self, mirroring: bool, step: i32) -> Duration {
        if mirroring {
            self.mirror.map_or(Duration::ZERO, |m| m.1)
        } else if step == 0 {
            Duration::ZERO
        } else {
            self.step_duration
        }
    }

    /// The percentage of the way to the target at `step` (1-based).
    pub fn percent(&self, step: i32) -> i32 {
        usize::try_from(step - 1)
            .ok()
            .and_then(|i| self.steps.get(i))
            .copied()
            .unwrap_or(100)
    }

    /// How long a backend gaining traffic may stay not Ready mid-migration before the
    /// migration rolls back: two analysis intervals, so a pod being replaced holds the step
    /// instead of failing it, and a backend that is really gone fails it soon.
    pub fn not_ready_grace(&self) -> Duration {
        self.interval() * 2
    }
}
