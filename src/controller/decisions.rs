//! Each route's migration decisions as metrics, so dashboards and alerts follow migrations
//! the way Argo Rollouts' and Flagger's users follow theirs: phase, step, the split the
//! gateway applies, every check's value against its threshold, verdicts and outcomes.
//!
//! The route reconcile hands over each status it has written (or found current); only the
//! leader reconciles, so only the leader exports. Series of a route that is deleted, or of
//! a backend or check that left it, are removed rather than left at their last value.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use prometheus::{GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry};

use crate::api::{MigrationOutcome, MigrationRecord, ModelRouteStatus, Phase, Verdict};

/// Every phase a route can be in, each exported as its own series.
const PHASES: [Phase; 6] = [
    Phase::Stable,
    Phase::Mirroring,
    Phase::Progressing,
    Phase::Holding,
    Phase::Paused,
    Phase::RolledBack,
];

const VERDICTS: [Verdict; 3] = [Verdict::Pass, Verdict::Inconclusive, Verdict::Fail];

const OUTCOMES: [MigrationOutcome; 5] = [
    MigrationOutcome::Promoted,
    MigrationOutcome::RolledBack,
    MigrationOutcome::Aborted,
    MigrationOutcome::Superseded,
    MigrationOutcome::ProgressDeadlineExceeded,
];

/// A match rather than `Debug`, so a new phase fails to compile here instead of exporting a
/// name nobody chose.
fn phase_name(p: Phase) -> &'static str {
    match p {
        Phase::Stable => "Stable",
        Phase::Mirroring => "Mirroring",
        Phase::Progressing => "Progressing",
        Phase::Holding => "Holding",
        Phase::Paused => "Paused",
        Phase::RolledBack => "RolledBack",
    }
}

fn verdict_name(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "Pass",
        Verdict::Inconclusive => "Inconclusive",
        Verdict::Fail => "Fail",
    }
}

/// A check's threshold as written in status (`<= 0.02`, `>= 0.9`, `[1, 5]`), as
/// `(bound, value)` pairs; a threshold in any other form (a relative one) has none.
pub fn parse_threshold(text: &str) -> Vec<(&'static str, f64)> {
    let num = |s: &str| s.trim().parse::<f64>().ok().filter(|v| v.is_finite());
    let text = text.trim();
    if let Some(hi) = text.strip_prefix("<=").and_then(num) {
        return vec![("max", hi)];
    }
    if let Some(lo) = text.strip_prefix(">=").and_then(num) {
        return vec![("min", lo)];
    }
    if let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']'))
        && let Some((lo, hi)) = inner.split_once(',')
        && let (Some(lo), Some(hi)) = (num(lo), num(hi))
    {
        return vec![("min", lo), ("max", hi)];
    }
    vec![]
}

/// The series one route has, so that exactly those are removed when it goes.
#[derive(Debug, Default)]
struct Exported {
    /// Backends with a weight series.
    backends: BTreeSet<String>,
    /// (check, backend) with a value series.
    values: BTreeSet<(String, String)>,
    /// (check, backend, bound) with a threshold series.
    thresholds: BTreeSet<(String, String, &'static str)>,
    /// Checks whose verdict counters exist (all three verdicts each).
    checks: BTreeSet<String>,
    /// Second of the newest analysis counted. Seconds, because status round-trips its
    /// times at that precision: the in-memory decision and the stored object must agree.
    analysis_at: Option<i64>,
    /// The newest finished migration counted.
    last_record: Option<MigrationRecord>,
}

/// The decision series of every route this replica reconciles.
pub struct Decisions {
    phase: IntGaugeVec,
    step: IntGaugeVec,
    steps: IntGaugeVec,
    weight: IntGaugeVec,
    check_value: GaugeVec,
    check_threshold: GaugeVec,
    verdicts: IntCounterVec,
    migrations: IntCounterVec,
    routes: Mutex<HashMap<(String, String), Exported>>,
}

impl Decisions {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let route = ["namespace", "route"];
        let phase = IntGaugeVec::new(
            Opts::new(
                "switchyard_route_phase",
                "1 for the phase a route's rollout is in, 0 for the others",
            ),
            &[&route[..], &["phase"]].concat(),
        )?;
        let step = IntGaugeVec::new(
            Opts::new(
                "switchyard_route_step",
                "Current rollout step (1-based), 0 when no migration runs",
            ),
            &route,
        )?;
        let steps = IntGaugeVec::new(
            Opts::new(
                "switchyard_route_steps",
                "Number of steps of the running migration, 0 when none runs",
            ),
            &route,
        )?;
        let weight = IntGaugeVec::new(
            Opts::new(
                "switchyard_route_weight",
                "Weight the gateway applies to a backend now, in thousandths (status.weights)",
            ),
            &[&route[..], &["backend"]].concat(),
        )?;
        let check_value = GaugeVec::new(
            Opts::new(
                "switchyard_analysis_check_value",
                "Value a check of the latest analysis measured (backend is empty for a check of the whole route)",
            ),
            &[&route[..], &["check", "backend"]].concat(),
        )?;
        let check_threshold = GaugeVec::new(
            Opts::new(
                "switchyard_analysis_check_threshold",
                "Threshold of a check of the latest analysis, by bound max or min",
            ),
            &[&route[..], &["check", "backend", "bound"]].concat(),
        )?;
        let verdicts = IntCounterVec::new(
            Opts::new(
                "switchyard_analysis_verdicts_total",
                "Verdicts of analysis checks, each analysis counted once",
            ),
            &[&route[..], &["check", "verdict"]].concat(),
        )?;
        let migrations = IntCounterVec::new(
            Opts::new(
                "switchyard_migrations_total",
                "Migrations finished, by outcome",
            ),
            &[&route[..], &["outcome"]].concat(),
        )?;
        registry.register(Box::new(phase.clone()))?;
        registry.register(Box::new(step.clone()))?;
        registry.register(Box::new(steps.clone()))?;
        registry.register(Box::new(weight.clone()))?;
        registry.register(Box::new(check_value.clone()))?;
        registry.register(Box::new(check_threshold.clone()))?;
        registry.register(Box::new(verdicts.clone()))?;
        registry.register(Box::new(migrations.clone()))?;
        Ok(Self {
            phase,
            step,
            steps,
            weight,
            check_value,
            check_threshold,
            verdicts,
            migrations,
            routes: Mutex::default(),
        })
    }

    /// Exports route `ns/name` at `after`, a status this replica wrote or found current.
    /// `before` is the status the decision started from: on the first sight of a route it
    /// says which analysis and migrations were already there (and counted, if at all, by
    /// whoever decided them), so a restarted leader counts only what it decides itself.
    pub fn observe(
        &self,
        ns: &str,
        name: &str,
        before: &ModelRouteStatus,
        after: &ModelRouteStatus,
    ) {
        let mut routes = self.routes.lock().expect("decisions lock");
        let key = (ns.to_owned(), name.to_owned());
        let first = !routes.contains_key(&key);
        let seen = routes.entry(key).or_default();
        if first {
            seen.analysis_at = before.last_analysis.as_ref().map(|a| a.time.0.as_second());
            seen.last_record = before.history.last().cloned();
            for o in OUTCOMES {
                self.migrations.with_label_values(&[ns, name, o.as_str()]);
            }
        }
        for p in PHASES {
            let on = after.phase == Some(p);
            self.phase
                .with_label_values(&[ns, name, phase_name(p)])
                .set(i64::from(on));
        }
        self.step
            .with_label_values(&[ns, name])
            .set(i64::from(after.step.unwrap_or(0)));
        let steps = after.rollout.as_ref().map_or(0, |r| r.steps.len());
        self.steps
            .with_label_values(&[ns, name])
            .set(i64::try_from(steps).unwrap_or(i64::MAX));
        self.weights(ns, name, seen, after);
        self.checks(ns, name, seen, after);
        self.finished(ns, name, seen, after);
    }

    fn weights(&self, ns: &str, name: &str, seen: &mut Exported, after: &ModelRouteStatus) {
        let now: BTreeSet<String> = after.weights.iter().map(|w| w.name.clone()).collect();
        for gone in seen.backends.difference(&now) {
            let _ = self.weight.remove_label_values(&[ns, name, gone]);
        }
        for w in &after.weights {
            self.weight
                .with_label_values(&[ns, name, &w.name])
                .set(i64::from(w.weight));
        }
        seen.backends = now;
    }

    fn checks(&self, ns: &str, name: &str, seen: &mut Exported, after: &ModelRouteStatus) {
        let checks = after.last_analysis.as_ref().map_or(&[][..], |a| &a.checks);
        let mut values = BTreeSet::new();
        let mut thresholds = BTreeSet::new();
        for c in checks {
            let backend = c.backend.as_deref().unwrap_or("");
            if let Some(v) = c.value {
                self.check_value
                    .with_label_values(&[ns, name, &c.name, backend])
                    .set(v);
                values.insert((c.name.clone(), backend.to_owned()));
            }
            for (bound, v) in parse_threshold(&c.threshold) {
                self.check_threshold
                    .with_label_values(&[ns, name, &c.name, backend, bound])
                    .set(v);
                thresholds.insert((c.name.clone(), backend.to_owned(), bound));
            }
            // All three verdicts from the start, so the first failure is an increase.
            if seen.checks.insert(c.name.clone()) {
                for v in VERDICTS {
                    self.verdicts
                        .with_label_values(&[ns, name, &c.name, verdict_name(v)]);
                }
            }
        }
        for (check, backend) in seen.values.difference(&values) {
            let _ = self
                .check_value
                .remove_label_values(&[ns, name, check, backend]);
        }
        for (check, backend, bound) in seen.thresholds.difference(&thresholds) {
            let _ = self
                .check_threshold
                .remove_label_values(&[ns, name, check, backend, bound]);
        }
        seen.values = values;
        seen.thresholds = thresholds;

        // Each analysis once: when a newer one than the last counted appears.
        let Some(analysis) = &after.last_analysis else {
            return;
        };
        let at = analysis.time.0.as_second();
        if seen.analysis_at.is_some_and(|prev| prev >= at) {
            return;
        }
        seen.analysis_at = Some(at);
        for c in checks {
            self.verdicts
                .with_label_values(&[ns, name, &c.name, verdict_name(c.verdict)])
                .inc();
        }
    }

    /// Counts the migrations that finished since the last one counted.
    fn finished(&self, ns: &str, name: &str, seen: &mut Exported, after: &ModelRouteStatus) {
        let history = &after.history;
        let new = match &seen.last_record {
            None => history.as_slice(),
            Some(last) => match history.iter().rposition(|r| same_record(r, last)) {
                Some(at) => &history[at + 1..],
                // The history no longer holds it: count what finished later.
                None => {
                    let from = history
                        .iter()
                        .position(|r| r.finished_at.0.as_second() > last.finished_at.0.as_second())
                        .unwrap_or(history.len());
                    &history[from..]
                }
            },
        };
        for r in new {
            self.migrations
                .with_label_values(&[ns, name, r.outcome.as_str()])
                .inc();
        }
        if let Some(last) = history.last() {
            seen.last_record = Some(last.clone());
        }
    }

    /// Removes every series of route `ns/name` (deleted, or no longer this controller's).
    pub fn forget(&self, ns: &str, name: &str) {
        let mut routes = self.routes.lock().expect("decisions lock");
        if let Some(seen) = routes.remove(&(ns.to_owned(), name.to_owned())) {
            self.remove(ns, name, &seen);
        }
    }

    /// Forgets the routes for which `keep(namespace, name)` is false: after a relist, the
    /// routes deleted while the watch was down.
    pub fn retain(&self, keep: impl Fn(&str, &str) -> bool) {
        let mut routes = self.routes.lock().expect("decisions lock");
        routes.retain(|(ns, name), seen| {
            let kept = keep(ns, name);
            if !kept {
                self.remove(ns, name, seen);
            }
            kept
        });
    }

    /// Removes every route's series: a replica that stops leading stops exporting decisions.
    pub fn clear(&self) {
        self.retain(|_, _| false);
    }

    fn remove(&self, ns: &str, name: &str, seen: &Exported) {
        // Errors only say a series was not there; the goal, its absence, holds either way.
        for p in PHASES {
            let _ = self.phase.remove_label_values(&[ns, name, phase_name(p)]);
        }
        let _ = self.step.remove_label_values(&[ns, name]);
        let _ = self.steps.remove_label_values(&[ns, name]);
        for b in &seen.backends {
            let _ = self.weight.remove_label_values(&[ns, name, b]);
        }
        for (check, backend) in &seen.values {
            let _ = self
                .check_value
                .remove_label_values(&[ns, name, check, backend]);
        }
        for (check, backend, bound) in &seen.thresholds {
            let _ = self
                .check_threshold
                .remove_label_values(&[ns, name, check, backend, bound]);
        }
        for check in &seen.checks {
            for v in VERDICTS {
                let _ = self
                    .verdicts
                    .remove_label_values(&[ns, name, check, verdict_name(v)]);
            }
        }
        for o in OUTCOMES {
            let _ = self.migrations.remove_label_values(&[ns, name, o.as_str()]);
        }
    }
}

/// One finished migration, compared at the precision status keeps (whole seconds).
fn same_record(a: &MigrationRecord, b: &MigrationRecord) -> bool {
    a.outcome == b.outcome
        && a.from == b.from
        && a.to == b.to
        && a.started_at.0.as_second() == b.started_at.0.as_second()
        && a.finished_at.0.as_second() == b.finished_at.0.as_second()
}

#[cfg(test)]
#[path = "decisions_tests.rs"]
mod tests;
