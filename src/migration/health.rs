//! The route's kstatus conditions, from where its migration stands: `Ready` only when the
//! desired split is fully in effect, `Reconciling` while a migration runs, `Stalled` when it
//! needs a person (rolled back, a backend missing), each with a specific reason.

use k8s_openapi::jiff::Timestamp;

use super::engine::AnalysisSource;
use super::settings::edited_mid_migration;
use super::split::{same_split, weights_summary};
use crate::api::conditions::{self, Desired, Reason};
use crate::api::{MigrationOutcome, ModelRouteSpec, ModelRouteStatus, Phase, condition};

pub fn set_conditions(
    st: &mut ModelRouteStatus,
    spec: &ModelRouteSpec,
    missing: &[String],
    prometheus: AnalysisSource,
    generation: Option<i64>,
    now: Timestamp,
) {
    let phase = st.phase.unwrap_or(Phase::Stable);
    let (ready, reconciling, stalled) = match phase {
        Phase::RolledBack => {
            let last = st.history.last();
            let reason = last.map_or(Reason::RolledBack, |h| match h.outcome {
                MigrationOutcome::Aborted => Reason::Aborted,
                MigrationOutcome::ProgressDeadlineExceeded => Reason::ProgressDeadlineExceeded,
                _ => Reason::RolledBack,
            });
            let why = last.and_then(|h| h.reason.clone()).unwrap_or_default();
            let message = format!(
                "{why}; serving {}. Change spec or run `kubectl switchyard retry` to try again",
                weights_summary(&st.stable)
            );
            (
                Desired::new(condition::READY, false, reason, message.clone()),
                None,
                Some(Desired::new(condition::STALLED, true, reason, message)),
            )
        }
        _ if !missing.is_empty() => {
            let names = missing
                .iter()
                .map(|m| format!("{m:?}"))
                .collect::<Vec<_>>()
                .join(", ");
            let message = format!(
                "InferenceBackend {names} not found in this namespace; create it or remove it from spec"
            );
            let reason = Reason::BackendNotFound;
            (
                Desired::new(condition::READY, false, reason, message.clone()),
                None,
                Some(Desired::new(condition::STALLED, true, reason, message)),
            )
        }
        Phase::Stable if same_split(&spec.backends, &st.weights) => (
            Desired::new(
                condition::READY,
                true,
                Reason::SplitInEffect,
                "the desired split is fully in effect",
            ),
            None,
            None,
        ),
        Phase::Holding if prometheus == AnalysisSource::NotConfigured => {
            // Waiting does not fix this, so it is Stalled (kstatus: Failed) at once.
            let reason = Reason::PrometheusNotConfigured;
            let message = format!(
                "no Prometheus to judge the migration by: start the controller with --prometheus-url \
                 (chart value controller.prometheus.url), or set spec.rollout.analysis.prometheusUrl \
                 for migrations that start after the change; holding at step {} with {}",
                st.step.unwrap_or(0),
                weights_summary(&st.weights)
            );
            (
                Desired::new(condition::READY, false, reason, message.clone()),
                None,
                Some(Desired::new(condition::STALLED, true, reason, message)),
            )
        }
        _ => {
            let unreachable = st
                .last_analysis
                .as_ref()
                .is_some_and(crate::analysis::unreachable);
            let reason = match phase {
                Phase::Mirroring => Reason::Mirroring,
                Phase::Paused => Reason::Paused,
                Phase::Holding if st.step == Some(0) || st.target_not_ready_since.is_some() => {
                    Reason::TargetNotReady
                }
                Phase::Holding if unreachable => Reason::PrometheusUnreachable,
                Phase::Holding => Reason::Holding,
                _ => Reason::Progressing,
            };
            let mut message = format!(
                "migrating to {} (step {}), now {}",
                weights_summary(&st.target),
                st.step.unwrap_or(0),
                weights_summary(&st.weights)
            );
            if edited_mid_migration(spec, st) {
                message.push_str(
                    "; spec.rollout changed mid-migration: this migration keeps the settings it started with (status.rollout), the change applies to the next one",
                );
            }
            (
                Desired::new(condition::READY, false, reason, message.clone()),
                Some(Desired::new(condition::RECONCILING, true, reason, message)),
                None,
            )
        }
    };
    conditions::set(&mut st.conditions, ready, generation, now);
    for (type_, want) in [
        (condition::RECONCILING, reconciling),
        (condition::STALLED, stalled),
    ] {
        match want {
            Some(d) => conditions::set(&mut st.conditions, d, generation, now),
            None => conditions::remove(&mut st.conditions, type_),
        }
    }
}
