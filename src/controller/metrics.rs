//! The controller's own metrics. Labels are fixed categories, never error text or names.

use std::sync::Arc;
use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry};

use super::Error;
use super::decisions::Decisions;

/// Clones share the same series (one registry, one set per process).
#[derive(Clone)]
pub struct Metrics {
    reconciles: IntCounterVec,
    errors: IntCounterVec,
    superseded: IntCounterVec,
    duration: HistogramVec,
    /// Warm-up requests sent to new inference pods, by outcome.
    pub warmup_requests: IntCounterVec,
    /// 1 while this replica holds the leader lease.
    pub leader: IntGauge,
    /// Each route's migration decisions (phase, step, weights, checks, verdicts, outcomes).
    pub decisions: Arc<Decisions>,
}

impl Metrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let reconciles = IntCounterVec::new(
            Opts::new(
                "switchyard_controller_reconciles_total",
                "Reconciles run, by resource kind",
            ),
            &["kind"],
        )?;
        let errors = IntCounterVec::new(
            Opts::new(
                "switchyard_controller_reconcile_errors_total",
                "Reconciles that failed, by kind and error class",
            ),
            &["kind", "error"],
        )?;
        let superseded = IntCounterVec::new(
            Opts::new(
                "switchyard_controller_reconciles_superseded_total",
                "Reconciles skipped because the object was a version this controller had already written over, by kind",
            ),
            &["kind"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "switchyard_controller_reconcile_duration_seconds",
                "Time spent in one reconcile",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["kind"],
        )?;
        let warmup_requests = IntCounterVec::new(
            Opts::new(
                "switchyard_controller_warmup_requests_total",
                "Warm-up requests sent to new inference pods, by outcome",
            ),
            &["outcome"],
        )?;
        let leader = IntGauge::new(
            "switchyard_controller_leader",
            "1 while this replica holds the leader lease",
        )?;
        registry.register(Box::new(warmup_requests.clone()))?;
        registry.register(Box::new(leader.clone()))?;
        registry.register(Box::new(reconciles.clone()))?;
        registry.register(Box::new(errors.clone()))?;
        registry.register(Box::new(superseded.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        let decisions = Arc::new(Decisions::register(registry)?);
        // Export zeroes from the start so rate() and absent() work before the first reconcile.
        for kind in ["inferencebackend", "modelroute"] {
            reconciles.with_label_values(&[kind]);
            superseded.with_label_values(&[kind]);
        }
        Ok(Self {
            reconciles,
            errors,
            superseded,
            duration,
            warmup_requests,
            leader,
            decisions,
        })
    }

    pub fn superseded(&self, kind: &str) {
        self.superseded.with_label_values(&[kind]).inc();
    }

    pub fn observe(&self, kind: &str, took: Duration, err: Option<&Error>) {
        self.reconciles.with_label_values(&[kind]).inc();
        self.duration
            .with_label_values(&[kind])
            .observe(took.as_secs_f64());
        if let Some(e) = err {
            self.errors
                .with_label_values(&[kind, e.metric_label()])
                .inc();
        }
    }
}
