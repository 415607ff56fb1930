//! The migration engine driven through whole migrations with a simulated clock.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::blend::blend;
use super::commands::{Command, CommandKind};
use super::engine::*;
use crate::api::{
    AnalysisResult, CheckResult, MigrationOutcome, ModelRouteSpec, ModelRouteStatus, Phase,
    Verdict, WeightedBackend,
};

pub(super) fn spec(yaml: &str) -> ModelRouteSpec {
    serde_yaml::from_str(yaml).unwrap()
}

pub(super) fn split(pairs: &[(&str, i32)]) -> Vec<WeightedBackend> {
    pairs
        .iter()
        .map(|(n, w)| WeightedBackend {
            name: (*n).into(),
            weight: *w,
        })
        .collect()
}

pub(super) fn result(verdict: Verdict, now: Timestamp) -> AnalysisResult {
    AnalysisResult {
        time: Time(now),
        window: None,
        verdict,
        checks: vec![CheckResult {
            name: "error-rate".into(),
            backend: None,
            value: (verdict != Verdict::Inconclusive).then_some(if verdict == Verdict::Fail {
                0.05
            } else {
                0.0
            }),
            baseline: None,
            threshold: "<= 0.005".into(),
            verdict,
            reason: None,
        }],
    }
}

pub(super) const STEPS: &str = r#"
rollout:
  steps: [5, 20, 50, 100]
  stepDuration: 60s
  analysis: {interval: 30s, maxErrorRate: 0.005, failureLimit: 0, maxHold: 5m}
"#;

pub(super) struct Sim {
    pub spec: ModelRouteSpec,
    pub status: ModelRouteStatus,
    pub now: Timestamp,
    pub missing: Vec<String>,
    pub not_ready: Vec<String>,
    pub gone: Vec<String>,
    pub prometheus: AnalysisSource,
    pub events: Vec<Event>,
    /// What a replay of the evaluation set finds when one is due (see `gate_tests`).
    pub evaluation: Option<crate::api::EvaluationVerdict>,
    /// The plans of the replays run, in order.
    pub evaluated: Vec<super::EvaluationPlan>,
}

impl Sim {
    pub fn new(yaml: &str) -> Self {
        let mut sim = Sim {
            spec: spec(yaml),
            status: ModelRouteStatus::default(),
            now: Timestamp::from_second(1_800_000_000).unwrap(),
            missing: vec![],
            not_ready: vec![],
            gone: vec![],
            prometheus: AnalysisSource::Configured,
            events: vec![],
            evaluation: None,
            evaluated: vec![],
        };
        sim.run(None, None);
        sim
    }

    /// Moves the clock, runs analysis when due with `verdict`, and decides.
    pub fn tick(&mut self, secs: i64, verdict: Verdict) -> Decision {
        self.now = self
            .now
            .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(secs))
            .unwrap();
        let analysis =
            analysis_due(&self.spec, &self.status, self.now).map(|_| result(verdict, self.now));
        self.run(analysis, None)
    }

    pub fn run(&mut self, analysis: Option<AnalysisResult>, command: Option<Command>) -> Decision {
        let ready = self.not_ready.is_empty();
        let evaluation = self.evaluation.and_then(|verdict| {
            let plan = super::evaluation_due(&self.spec, &self.status, ready, self.now)?;
            let e = crate::api::EvaluationStatus {
                time: Time(self.now),
                step: plan.step,
                verdict,
                message: format!("{verdict:?}"),
                backends: vec![],
                failing: vec![],
            };
            self.evaluated.push(plan);
            Some(e)
        });
        let d = decide(Inputs {
            spec: &self.spec,
            status: &self.status,
            generation: Some(1),
            missing: &self.missing,
            not_ready: &self.not_ready,
            shadow_gone: &self.gone,
            prometheus: self.prometheus,
            analysis,
            evaluation,
            command,
            now: self.now,
        });
        self.status = d.status.clone();
        self.events.extend(d.events.clone());
        d
    }

    pub fn command(&mut self, id: &str, kind: CommandKind) -> Decision {
        self.run(
            None,
            Some(Command {
                id: id.into(),
                kind,
            }),
        )
    }

    pub fn change(&mut self, backends: &str) {
        self.spec.backends = serde_yaml::from_str(backends).unwrap();
    }

    pub fn reasons(&self) -> Vec<&'static str> {
        self.events.iter().map(|e| e.reason).collect()
    }
}

pub(super) fn ready(st: &ModelRouteStatus) -> Option<&str> {
    crate::api::find_condition(&st.conditions, "Ready").map(|c| c.status.as_str())
}

#[test]
fn a_healthy_migration_walks_every_step_and_promotes() {
    let mut sim = Sim::new(&format!("backends: [{{name: openai, weight: 100}}]{STEPS}"));
    assert_eq!(sim.status.weights, split(&[("openai", 1000)]));
    assert_eq!(ready(&sim.status), Some("True"));

    sim.change("[{name: llama, weight: 100}]");
    sim.run(None, None);
    assert_eq!(sim.status.weights, split(&[("openai", 950), ("llama", 50)]));
    assert_eq!(sim.status.step_summary.as_deref(), Some("1/4 (5%)"));
    assert_eq!(ready(&sim.status), Some("False"));

    let mut seen = vec![];
    for _ in 0..40 {
        sim.tick(30, Verdict::Pass);
        if seen.last() != Some(&sim.status.weights) {
            seen.push(sim.status.weights.clone());
        }
    }
    assert_eq!(
        seen,
        vec![
            split(&[("openai", 950), ("llama", 50)]),
            split(&[("openai", 800), ("llama", 200)]),
            split(&[("openai", 500), ("llama", 500)]),
            split(&[("llama", 1000)]),
        ]
    );
    assert_eq!(sim.status.stable, split(&[("llama", 100)]));
    assert_eq!(sim.status.phase, Some(Phase::Stable));
    assert_eq!(ready(&sim.status), Some("True"));
    assert_eq!(
        sim.status.history.last().unwrap().outcome,
        MigrationOutcome::Promoted
    );
    let reasons = sim.reasons();
    assert_eq!(reasons.iter().filter(|r| **r == "StepAdvanced").count(), 4);
    assert!(reasons.contains(&"MigrationStarted") && reasons.contains(&"AnalysisPassed"));
    assert_eq!(reasons.last(), Some(&"Promoted"));
}

#[test]
fn a_failed_analysis_rolls_back_to_exactly_the_stable_split() {
    let mut sim = Sim::new(&format!(
        "backends: [{{name: a, weight: 60}}, {{name: b, weight: 40}}]{STEPS}"
    ));
    sim.change("[{name: c, weight: 1}]");
    sim.run(None, None);
    sim.tick(30, Verdict::Fail);
    assert_eq!(sim.status.phase, Some(Phase::RolledBack));
    assert_eq!(sim.status.weights, split(&[("a", 600), ("b", 400)]));
    let stalled = crate::api::find_condition(&sim.status.conditions, "Stalled").unwrap();
    assert_eq!(
        (stalled.status.as_str(), stalled.reason.as_str()),
        ("True", "RolledBack")
    );
    assert!(
        stalled.message.contains("error-rate 0.05 > 0.005 (Fail)"),
        "{}",
        stalled.message
    );
    assert!(sim.reasons().contains(&"AnalysisFailed") && sim.reasons().contains(&"RolledBack"));
    // It stays rolled back until spec changes or a retry.
    for _ in 0..5 {
        sim.tick(30, Verdict::Pass);
    }
    assert_eq!(sim.status.phase, Some(Phase::RolledBack));
    sim.command("1", CommandKind::Retry);
    assert_eq!(sim.status.phase, Some(Phase::Progressing));
    assert_eq!(sim.status.step, Some(1));
}

#[test]
fn failure_limit_tolerates_that_many_failures_per_step() {
    let mut sim = Sim::new(&format!(
        "backends: [{{name: a, weight: 1}}]{}",
        STEPS.replace("failureLimit: 0", "failureLimit: 1")
    ));
    sim.change("[{name: b, weight: 1}]");
    sim.run(None, None);
    sim.tick(30, Verdict::Fail);
    assert_eq!(sim.status.phase, Some(Phase::Progressing));
    assert_eq!(sim.status.failures, Some(1));
    sim.tick(30, Verdict::Fail);
    assert_eq!(sim.status.phase, Some(Phase::RolledBack));
}

#[test]
fn inconclusive_holds_then_rolls_back_after_max_hold() {
    let mut sim = Sim::new(&format!("backends: [{{name: a, weight: 1}}]{STEPS}"));
    sim.change("[{name: b, weight: 1}]");
    sim.run(None, None);
    let at_step_one = sim.status.weights.clone();
    for _ in 0..9 {
        sim.tick(30, Verdict::Inconclusive);
        assert_eq!(sim.status.phase, Some(Phase::Holding));
        assert_eq!(
            sim.status.weights, at_step_one,
            "neither promoted nor rolled back"
        );
    }
    sim.tick(30, Verdict::Inconclusive);
    sim.tick(30, Verdict::Inconclusive);
    assert_eq!(sim.status.phase, Some(Phase::RolledBack));
    assert!(
        sim.status
            .history
            .last()
            .unwrap()
            .reason
            .as_ref()
            .unwrap()
            .contains("maxHold")
    );

    let mut sim = Sim::new(&format!(
        "backends: [{{name: a, weight: 1}}]{}",
        STEPS.replace("maxHold: 5m", "onInconclusive: Rollback")
    ));
    sim.change("[{name: b, weight: 1}]");
    sim.run(None, None);
    sim.tick(30, Verdict::Inconclusive);
    assert_eq!(sim.status.phase, Some(Phase::RolledBack));
}

#[test]
fn a_step_never_advances_without_a_pass_measured_within_it() {
    let mut sim = Sim::new(&format!("backends: [{{name: a, weight: 1}}]{STEPS}"));
    sim.change("[{name: b, weight: 1}]");
    sim.run(None, None);
    // No analysis results at all (Prometheus down is inconclusive; here: none ran).
    for _ in 0..10 {
        sim.now = sim
            .now
            .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(60))
            .unwrap();
        sim.run(None, None);
    }
    assert_eq!(sim.status.step, Some(1));
}

#[test]
fn targets_not_ready_hold_before_step_one() {
    let mut sim = Sim::new(&format!("backends: [{{name: a, weight: 1}}]{STEPS}"));
    sim.not_ready = vec!["b".into()];
    sim.change("[{name: b, weight: 1}]");
    sim.run(None, None);
    assert_eq!(sim.status.phase, Some(Phase::Holding));
    assert_eq!(sim.status.weights, split(&[("a", 1000)]));
    assert_eq!(sim.status.step, Some(0));
    assert!(
        analysis_due(
            &sim.spec,
            &sim.status,
            sim.now
                .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(600))
                .unwrap()
        )
        .is_none()
    );
    sim.not_ready.clear();
    sim.tick(1, Verdict::Pass);
    assert_eq!(sim.status.step, Some(1));
}

#[test]
fn without_prometheus_a_migration_holds_before_step_one_and_says_so() {
    let mut sim = Sim::new(&format!("backends: [{{name: a, weight: 1}}]{STEPS}"));
    sim.prometheus = AnalysisSource::NotConfigured;
    sim.change("[{name: b, weight: 1}]");
    for _ in 0..3 {
        sim.tick(60, Verdict::Inconclusive);
    }
    assert_eq!(sim.status.phase, Some(Phase::Holding));
    assert_eq!(sim.status.step, Some(0), "no traffic moves unjudged");
    assert_eq!(sim.status.weights, split(&[("a", 1000)]));
    let ready = crate::api::find_condition(&sim.status.conditions, "Ready").unwrap();
    assert_eq!(ready.reason, "PrometheusNotConfigured");
    // Waiting does not fix it: kstatus reads Stalled as Failed, so GitOps tools show it.
    let (reason, message) = stalled(&sim.status).unwrap();
    assert_eq!(reason, "PrometheusNotConfigured");
    assert!(message.contains("--prometheus-url"), "{message}");
    assert!(message.contains("controller.prometheus.url"), "{message}");

    // Configured (the controller restarted with the flag): the migration goes on.
    sim.prometheus = AnalysisSource::Configured;
    sim.tick(1, Verdict::Pass);
    assert_eq!(sim.status.step, Some(1));
    assert!(stalled(&sim.status).is_none());

    // Lost mid-migration (restarted without it): held at the step, with the same reason.
    sim.prometheus = AnalysisSource::NotConfigured;
    sim.tick(30, Verdict::Inconclusive);
    assert_eq!(sim.status.step, Some(1));
    let ready = crate::api::find_condition(&sim.status.conditions, "Ready").unwrap();
    assert_eq!(ready.reason, "PrometheusNotConfigured");
}

#[test]
fn sixty_thirty_ten_to_ten_thirty_sixty_is_exact_at_every_step() {
    let mut sim = Sim::new(&format!(
        "backends: [{{name: a, weight: 60}}, {{name: b, weight: 30}}, {{name: c, weight: 10}}]{STEPS}"
    ));
    sim.change("[{name: a, weight: 10}, {name: b, weight: 30}, {name: c, weight: 60}]");
    sim.run(None, None);
    let mut seen = vec![sim.status.weights.clone()];
    for _ in 0..40 {
        sim.tick(30, Verdict::Pass);
        if seen.last() != Some(&sim.status.weights) {
            seen.push(sim.status.weights.clone());
        }
    }
    assert_eq!(
        seen,
        vec![
            split(&[("a", 575), ("b", 300), ("c", 125)]),
            split(&[("a", 500), ("b", 300), ("c", 200)]),
            split(&[("a", 350), ("b", 300), ("c", 350)]),
            split(&[("a", 100), ("b", 300), ("c", 600)]),
        ]
    );
}

#[test]
fn commands_pause_resume_promote_abort() {
    let mut sim = Sim::new(&format!("backends: [{{name: a, weight: 1}}]{STEPS}"));
    sim.change("[{name: b, weight: 1}]");
    sim.run(None, None);
    sim.command("p1", CommandKind::Pause);
    assert_eq!(sim.status.phase, Some(Phase::Paused));
    for _ in 0..10 {
        sim.tick(30, Verdict::Pass);
    }
    assert_eq!(sim.status.step, Some(1), "paused: no progress");
    // The same command id is carried out once only.
    sim.command("p1", CommandKind::Resume);
    assert_eq!(sim.status.phase, Some(Phase::Paused));
    sim.command("r1", CommandKind::Resume);
    assert_eq!(sim.status.phase, Some(Phase::Progressing));
    sim.command("x1", CommandKind::Promote);
    assert_eq!(sim.status.step, Some(2));
    assert_eq!(sim.status.weights, split(&[("a", 800), ("b", 200)]));
    sim.command("x2", CommandKind::Abort);
    assert_eq!(sim.status.phase, Some(Phase::RolledBack));
    assert_eq!(sim.status.weights, split(&[("a", 1000)]));
    assert_eq!(
        crate::api::find_condition(&sim.status.conditions, "Stalled")
            .unwrap()
            .reason,
        "Aborted"
    );
    sim.command("x3", CommandKind::Retry);
    sim.command("x4", CommandKind::PromoteFull);
    assert_eq!(
        (sim.status.phase, sim.status.weights.clone()),
        (Some(Phase::Stable), split(&[("b", 1000)]))
    );
    assert!(sim.reasons().contains(&"Paused") && sim.reasons().contains(&"Resumed"));
}

#[test]
fn a_spec_change_mid_migration_restarts_from_stable() {
    let mut sim = Sim::new(&format!("backends: [{{name: a, weight: 1}}]{STEPS}"));
    sim.change("[{name: b, weight: 1}]");
    sim.run(None, None);
    for _ in 0..3 {
        sim.tick(30, Verdict::Pass);
    }
    assert_eq!(sim.status.step, Some(2));
    sim.change("[{name: c, weight: 1}]");
    sim.run(None, None);
    assert_eq!(sim.status.weights, split(&[("a", 950), ("c", 50)]));
    assert_eq!(
        sim.status.history.last().unwrap().outcome,
        MigrationOutcome::Superseded
    );
}

#[test]
fn mirror_phase_comes_before_any_live_weight_moves() {
    let mut sim = Sim::new(&format!(
        "backends: [{{name: a, weight: 1}}]{STEPS}  mirror: {{percent: 50, duration: 90s}}\n"
    ));
    sim.change("[{name: b, weight: 1}]");
    sim.run(None, None);
    assert_eq!(sim.status.phase, Some(Phase::Mirroring));
    assert_eq!(sim.status.weights, split(&[("a", 1000)]));
    assert_eq!(sim.status.mirror.as_ref().unwrap().backends, ["b"]);
    let plan = analysis_due(
        &sim.spec,
        &sim.status,
        sim.now
            .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(30))
            .unwrap(),
    )
    .unwrap();
    assert!(plan.mirror && plan.gaining == ["b"] && plan.baseline == ["a"]);
    for _ in 0..3 {
        sim.tick(30, Verdict::Pass);
    }
    assert_eq!(sim.status.step, Some(1));
    assert!(sim.status.mirror.is_none());
    assert!(sim.reasons().contains(&"MirrorStarted"));
}

/// Property test: random verdicts, pauses, clock jumps and restarts (re-deciding from the
/// written status). The applied split is always valid, never beyond the current step, a
/// rollback restores exactly the stable split, and re-deciding is idempotent.
#[test]
fn random_runs_keep_the_invariants() {
    let mut rng = fastrand::Rng::with_seed(42);
    let steps = [5, 20, 50, 100];
    for run in 0..300 {
        let mut sim = Sim::new(&format!(
            "backends: [{{name: a, weight: 70}}, {{name: b, weight: 30}}]{STEPS}"
        ));
        sim.change("[{name: b, weight: 50}, {name: c, weight: 50}]");
        sim.run(None, None);
        for _ in 0..60 {
            let verdict = match rng.u8(0..10) {
                0 => Verdict::Fail,
                1 | 2 => Verdict::Inconclusive,
                _ => Verdict::Pass,
            };
            if rng.u8(0..20) == 0 {
                sim.command(
                    &format!("{run}-{}", rng.u32(..)),
                    if rng.bool() {
                        CommandKind::Pause
                    } else {
                        CommandKind::Resume
                    },
                );
            }
            let before = sim.status.clone();
            sim.tick(rng.i64(1..90), verdict);
            let st = &sim.status;
            let total: i32 = st.weights.iter().map(|w| w.weight).sum();
            assert!(total > 0 && st.weights.iter().all(|w| w.weight >= 0));
            match st.phase.unwrap() {
                Phase::RolledBack => assert_eq!(st.weights, split(&[("a", 700), ("b", 300)])),
                Phase::Stable => assert!(
                    st.weights == split(&[("b", 500), ("c", 500)])
                        || st.weights == split(&[("a", 700), ("b", 300)])
                ),
                _ => {
                    let step = st.step.unwrap();
                    let expected = if step == 0 {
                        super::split::normalize(&st.stable)
                    } else {
                        blend(&st.stable, &st.target, steps[step as usize - 1])
                    };
                    assert_eq!(
                        st.weights, expected,
                        "weights are exactly the current step's blend"
                    );
                    assert_eq!(total, 1000, "one unit in every phase");
                    // Never more than one step forward per decision.
                    assert!(step <= before.step.unwrap_or(0) + 1);
                }
            }
            // A restarted controller re-deciding from the written status changes nothing.
            let again = decide(Inputs {
                spec: &sim.spec,
                status: &sim.status,
                generation: Some(1),
                missing: &[],
                not_ready: &[],
                shadow_gone: &[],
                prometheus: AnalysisSource::Configured,
                analysis: None,
                evaluation: None,
                command: None,
                now: sim.now,
            });
            assert_eq!(again.status, sim.status, "idempotent");
            assert!(again.events.is_empty());
        }
    }
}

fn stalled(st: &ModelRouteStatus) -> Option<(String, String)> {
    crate::api::find_condition(&st.conditions, "Stalled")
        .filter(|c| c.status == "True")
        .map(|c| (c.reason.clone(), c.message.clone()))
}

/// Issue 8: at the 20% step of [5,20,50,100], editing the steps to [50,100] and one promote
/// moved the new backend from 20% to 100%. The running migration keeps its snapshot.
#[test]
fn editing_the_rollout_mid_migration_never_moves_weights_more_than_one_step() {
    let mut sim = Sim::new(&format!("backends: [{{name: a, weight: 1}}]{STEPS}"));
    sim.change("[{name: b, weight: 1}]");
    sim.run(None, None);
    sim.tick(30, Verdict::Pass);
    sim.tick(30, Verdict::Pass);
    assert_eq!(sim.status.weights, split(&[("a", 800), ("b", 200)]));
    let snapshot = sim
        .status
        .rollout
        .clone()
        .expect("settings snapshotted at start");
    assert_eq!(snapshot.steps, [5, 20, 50, 100]);

    let rollout = sim.spec.rollout.as_mut().unwrap();
    rollout.steps = vec![50, 100];
    rollout.step_duration = crate::api::Duration::from("1s");
    sim.run(None, None);
    let msg = crate::api::find_condition(&sim.status.conditions, "Reconciling")
        .unwrap()
        .message
        .clone();
    assert!(msg.contains("keeps the settings it started with"), "{msg}");
    assert_eq!(sim.status.step_summary.as_deref(), Some("2/4 (20%)"));

    sim.command("p", CommandKind::Promote);
    assert_eq!(
        sim.status.weights,
        split(&[("a", 500), ("b", 500)]),
        "one step of the snapshot, not the edited steps"
    );
    // The snapshot's 60 s step duration still applies, not the edited 1 s.
    sim.tick(30, Verdict::Pass);
    assert_eq!(sim.status.step, Some(3));
    // The next migration runs with the edited settings.
    sim.command("full", CommandKind::PromoteFull);
    assert!(sim.status.rollout.is_none());
    sim.change("[{name: c, weight: 1}]");
    sim.run(None, None);
    assert_eq!(sim.status.rollout.as_ref().unwrap().steps, [50, 100]);
    assert_eq!(sim.status.weights, split(&[("b", 500), ("c", 500)]));
}

#[test]
fn equal_shares_are_no_migration_and_mirroring_needs_a_new_backend() {
    let mut sim = Sim::new(&format!(
        "backends: [{{name: a, weight: 50}}, {{name: b, weight: 50}}]{STEPS}  mirror: {{percent: 50, duration: 90s}}\n"
    ));
    sim.change("[{name: a, weight: 1}, {name: b, weight: 1}]");
    sim.run(None, None);
    assert_eq!(sim.status.phase, Some(Phase::Stable));
    assert!(sim.status.target.is_empty());
    assert!(!sim.reasons().contains(&"MigrationStarted"));
    assert_eq!(ready(&sim.status), Some("True"));
    assert_eq!(sim.status.weights, split(&[("a", 500), ("b", 500)]));

    // 50/50 -> 40/60 moves traffic between existing backends: nothing new to mirror to.
    sim.change("[{name: a, weight: 40}, {name: b, weight: 60}]");
    sim.run(None, None);
    assert_eq!(sim.status.phase, Some(Phase::Progressing));
    assert!(sim.status.mirror.is_none());
    assert_eq!(sim.status.step, Some(1));
}

#[test]
fn weights_have_one_unit_in_every_phase() {
    let mut sim = Sim::new(&format!(
        "backends: [{{name: a, weight: 95}}, {{name: b, weight: 5}}]{STEPS}"
    ));
    assert_eq!(sim.status.weights, split(&[("a", 950), ("b", 50)]));
    sim.change("[{name: b, weight: 1}]");
    sim.run(None, None);
    for _ in 0..40 {
        sim.tick(30, Verdict::Pass);
        let total: i32 = sim.status.weights.iter().map(|w| w.weight).sum();
        assert_eq!(total, 1000, "{:?}", sim.status.weights);
    }
    assert_eq!(sim.status.phase, Some(Phase::Stable));
    assert_eq!(sim.status.weights, split(&[("b", 1000)]));
    assert_eq!(sim.status.weights_summary.as_deref(), Some("b=1000"));
}

#[test]
fn a_target_that_stops_being_ready_mid_migration_rolls_back_after_the_grace() {
    let mut sim = Sim::new(&format!("backends: [{{name: a, weight: 1}}]{STEPS}"));
    sim.change("[{name: b, weight: 1}]");
    sim.run(None, None);
    assert_eq!(sim.status.step, Some(1));
    sim.not_ready = vec!["b".into()];
    sim.tick(30, Verdict::Pass);
    assert_eq!(sim.status.phase, Some(Phase::Holding));
    let reconciling = crate::api::find_condition(&sim.status.conditions, "Reconciling").unwrap();
    assert_eq!(reconciling.reason, "TargetNotReady");
    sim.tick(30, Verdict::Pass);
    assert_eq!(
        sim.status.step,
        Some(1),
        "never advances onto an unready target"
    );
    sim.tick(31, Verdict::Pass);
    assert_eq!(sim.status.phase, Some(Phase::RolledBack));
    let (reason, message) = stalled(&sim.status).unwrap();
    assert_eq!(reason, "RolledBack");
    assert!(message.contains("b stopped being Ready"), "{message}");

    // A brief blip (a replaced pod) only holds.
    let mut sim = Sim::new(&format!("backends: [{{name: a, weight: 1}}]{STEPS}"));
    sim.change("[{name: b, weight: 1}]");
    sim.run(None, None);
    sim.not_ready = vec!["b".into()];
    sim.tick(30, Verdict::Pass);
    sim.not_ready.clear();
    sim.tick(30, Verdict::Pass);
    sim.tick(30, Verdict::Pass);
    assert_eq!(sim.status.step, Some(2));
    assert!(sim.status.target_not_ready_since.is_none());
}

#[test]
fn a_missing_backend_fails_the_migration_and_blocks_a_new_one() {
    let mut sim = Sim::new(&format!("backends: [{{name: a, weight: 1}}]{STEPS}"));
    sim.change("[{name: b, weight: 1}]");
    sim.run(None, None);
    sim.tick(30, Verdict::Pass);
    sim.tick(30, Verdict::Pass);
    assert_eq!(sim.status.step, Some(2));
    sim.missing = vec!["b".into()];
    sim.tick(1, Verdict::Pass);
    assert_eq!(sim.status.phase, Some(Phase::RolledBack));
    assert_eq!(sim.status.weights, split(&[("a", 1000)]));
    assert!(stalled(&sim.status).unwrap().1.contains("\"b\""));

    // A new route naming a backend that does not exist applies nothing and says so.
    let mut sim = Sim {
        missing: vec!["ghost".into()],
        ..Sim::new(&format!("backends: [{{name: a, weight: 1}}]{STEPS}"))
    };
    sim.status = ModelRouteStatus::default();
    sim.change("[{name: ghost, weight: 1}]");
    sim.run(None, None);
    assert!(sim.status.weights.is_empty());
    let (reason, message) = stalled(&sim.status).unwrap();
    assert_eq!(reason, "BackendNotFound");
    assert!(message.contains("\"ghost\""), "{message}");
}

#[test]
fn a_migration_that_cannot_advance_ends_at_the_progress_deadline() {
    let mut sim = Sim::new(&format!(
        "backends: [{{name: a, weight: 1}}]{STEPS}  progressDeadline: 10m\n"
    ));
    sim.not_ready = vec!["b".into()];
    sim.change("[{name: b, weight: 1}]");
    sim.run(None, None);
    for _ in 0..19 {
        sim.tick(30, Verdict::Pass);
        assert_eq!(sim.status.phase, Some(Phase::Holding));
    }
    let wake = sim.tick(30, Verdict::Pass);
    assert_eq!(sim.status.phase, Some(Phase::RolledBack));
    assert_eq!(wake.requeue, None);
    let (reason, message) = stalled(&sim.status).unwrap();
    assert_eq!(reason, "ProgressDeadlineExceeded");
    assert!(
        message.contains("progressDeadline 10m") && message.contains("waiting for b"),
        "{message}"
    );
    assert_eq!(
        sim.status.history.last().unwrap().outcome,
        MigrationOutcome::ProgressDeadlineExceeded
    );

    // The default is 30 minutes, counted beyond the step's own duration.
    let mut sim = Sim::new(&format!("backends: [{{name: a, weight: 1}}]{STEPS}"));
    sim.change("[{name: b, weight: 1}]");
    sim.run(None, None);
    for _ in 0..61 {
        sim.tick(30, Verdict::Inconclusive);
    }
    assert_eq!(
        sim.status.phase,
        Some(Phase::RolledBack),
        "maxHold 5m first"
    );
}

#[test]
fn a_paused_canary_is_still_analysed_and_rolls_back_on_failure() {
    let mut sim = Sim::new(&format!("backends: [{{name: a, weight: 1}}]{STEPS}"));
    sim.change("[{name: b, weight: 1}]");
    sim.run(None, None);
    sim.command("p", CommandKind::Pause);
    assert_eq!(sim.status.phase, Some(Phase::Paused));
    // Inconclusive verdicts while paused neither advance nor count towards maxHold.
    for _ in 0..20 {
        sim.tick(30, Verdict::Inconclusive);
        assert_eq!(sim.status.phase, Some(Phase::Paused));
    }
    assert!(analysis_due(&sim.spec, &sim.status, sim.now).is_none());
    sim.tick(30, Verdict::Fail);
    assert_eq!(sim.status.phase, Some(Phase::RolledBack));
    assert_eq!(sim.status.weights, split(&[("a", 1000)]));
}

#[test]
fn commands_say_when_they_were_ignored() {
    let mut sim = Sim::new(&format!("backends: [{{name: a, weight: 1}}]{STEPS}"));
    sim.command("1", CommandKind::Promote);
    assert_eq!(
        sim.status.last_command_result.as_deref(),
        Some("promote ignored: no migration is in progress")
    );
    sim.change("[{name: b, weight: 1}]");
    sim.run(None, None);
    sim.command("2", CommandKind::Resume);
    assert_eq!(
        sim.status.last_command_result.as_deref(),
        Some("resume ignored: the migration is not paused")
    );
    sim.command("3", CommandKind::Pause);
    assert_eq!(
        sim.status.last_command_result.as_deref(),
        Some("pause: paused at step 1")
    );
    sim.command("4", CommandKind::Retry);
    assert!(
        sim.status
            .last_command_result
            .as_deref()
            .unwrap()
            .contains(super::IGNORED)
    );
}

#[test]
fn a_step_advances_only_when_the_analysis_window_lies_within_it() {
    let mut sim = Sim::new(&format!("backends: [{{name: a, weight: 1}}]{STEPS}"));
    sim.change("[{name: b, weight: 1}]");
    sim.run(None, None);
    // Analyses every 30 s over a 2-minute window: the first three still reach into the time
    // before the step began.
    let with_window = |now: Timestamp| AnalysisResult {
        window: Some(crate::api::Duration::from("2m")),
        ..result(Verdict::Pass, now)
    };
    for _ in 0..3 {
        sim.now = sim
            .now
            .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(30))
            .unwrap();
        let a = analysis_due(&sim.spec, &sim.status, sim.now).map(|_| with_window(sim.now));
        sim.run(a, None);
        assert_eq!(sim.status.step, Some(1));
    }
    sim.now = sim
        .now
        .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(30))
        .unwrap();
    let a = analysis_due(&sim.spec, &sim.status, sim.now).map(|_| with_window(sim.now));
    sim.run(a, None);
    assert_eq!(sim.status.step, Some(2));
}

#[test]
fn the_baseline_is_what_the_stable_split_still_serves_live() {
    let mut sim = Sim::new(&format!("backends: [{{name: openai, weight: 100}}]{STEPS}"));
    sim.change("[{name: llama, weight: 100}]");
    sim.run(None, None);
    let mut baselines = vec![];
    for _ in 0..40 {
        let next = sim
            .now
            .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(30))
            .unwrap();
        if let Some(plan) = analysis_due(&sim.spec, &sim.status, next) {
            baselines.push((sim.status.step.unwrap(), plan.baseline.clone()));
        }
        sim.tick(30, Verdict::Pass);
    }
    assert_eq!(
        sim.status.phase,
        Some(Phase::Stable),
        "the last step passes too"
    );
    assert!(baselines.iter().any(|(s, b)| *s == 3 && b == &["openai"]));
    assert!(
        baselines
            .iter()
            .filter(|(s, _)| *s == 4)
            .all(|(_, b)| b.is_empty())
    );
    assert!(baselines.iter().any(|(s, _)| *s == 4));
}
