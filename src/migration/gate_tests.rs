//! The quality gate in whole migrations: nothing moves before the evaluation set passed, a
//! failing replay rolls back naming the failing cases, and `everyStep` gates every step.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::engine_tests::Sim;
use crate::api::{
    EvaluationBackend, EvaluationFailure, EvaluationStatus, EvaluationVerdict, MigrationOutcome,
    Phase, Verdict, WeightedBackend,
};

fn gated(every_step: bool) -> String {
    format!(
        r#"
backends: [{{name: openai, weight: 100}}]
rollout:
  steps: [50, 100]
  stepDuration: 60s
  analysis: {{interval: 30s, maxErrorRate: 0.005, failureLimit: 0}}
  evaluation: {{configMapRef: {{name: qa}}, minRelativePassRate: 0.9, everyStep: {every_step}}}
"#
    )
}

fn weight_of(w: &[WeightedBackend], name: &str) -> i32 {
    w.iter().find(|b| b.name == name).map_or(0, |b| b.weight)
}

#[test]
fn nothing_moves_before_the_evaluation_set_passed() {
    let mut sim = Sim::new(&gated(false));
    sim.change("[{name: llama, weight: 100}]");
    sim.run(None, None);
    assert_eq!(sim.status.phase, Some(Phase::Holding));
    assert_eq!(sim.status.step, Some(0));
    assert_eq!(weight_of(&sim.status.weights, "llama"), 0);

    // The replay could not run (say the ConfigMap is missing): still holding, retried.
    sim.evaluation = Some(EvaluationVerdict::Error);
    sim.tick(1, Verdict::Pass);
    assert_eq!(sim.status.phase, Some(Phase::Holding));
    assert_eq!(sim.reasons().last(), Some(&"EvaluationError"));
    sim.tick(5, Verdict::Pass);
    assert_eq!(
        sim.evaluated.len(),
        1,
        "an errored replay is retried after an interval"
    );
    sim.evaluation = Some(EvaluationVerdict::Pass);
    sim.tick(30, Verdict::Pass);
    assert_eq!(sim.evaluated.len(), 2);
    assert_eq!(sim.evaluated[1].stable, ["openai"]);
    assert_eq!(sim.evaluated[1].new, ["llama"]);
    assert_eq!(sim.status.step, Some(1));
    assert_eq!(weight_of(&sim.status.weights, "llama"), 500);
    assert!(sim.reasons().contains(&"EvaluationPassed"));

    // Only step 0 is gated without everyStep: the migration completes with no more replays.
    for _ in 0..10 {
        sim.tick(30, Verdict::Pass);
    }
    assert_eq!(sim.status.phase, Some(Phase::Stable));
    assert_eq!(sim.evaluated.len(), 2);
}

#[test]
fn a_failing_replay_rolls_back_with_the_failing_cases_named() {
    let mut sim = Sim::new(&gated(false));
    sim.change("[{name: llama, weight: 100}]");
    sim.run(None, None);
    // What the controller's replay writes: pass rates and failing examples.
    let plan = super::evaluation_due(&sim.spec, &sim.status, true, sim.now).unwrap();
    let e = EvaluationStatus {
        time: Time(sim.now),
        step: plan.step,
        verdict: EvaluationVerdict::Fail,
        message:
            "llama passed 1 of 3 cases (33.3%), below 90% of the stable backends' 100.0% (90.0%)"
                .into(),
        backends: vec![
            EvaluationBackend {
                backend: "openai".into(),
                stable: true,
                passed: 3,
                total: 3,
            },
            EvaluationBackend {
                backend: "llama".into(),
                stable: false,
                passed: 1,
                total: 3,
            },
        ],
        failing: vec![
            EvaluationFailure {
                backend: "llama".into(),
                case: "refund-json".into(),
                reason: "not JSON".into(),
            },
            EvaluationFailure {
                backend: "llama".into(),
                case: "order-json".into(),
                reason: "not JSON".into(),
            },
        ],
    };
    let d = super::decide(super::Inputs {
        spec: &sim.spec,
        status: &sim.status,
        generation: Some(1),
        missing: &[],
        not_ready: &[],
        shadow_gone: &[],
        prometheus: super::AnalysisSource::Configured,
        analysis: None,
        evaluation: Some(e),
        command: None,
        now: sim.now,
    });
    let st = &d.status;
    assert_eq!(st.phase, Some(Phase::RolledBack));
    assert_eq!(weight_of(&st.weights, "llama"), 0);
    let why = st.history.last().unwrap();
    assert_eq!(why.outcome, MigrationOutcome::RolledBack);
    assert_eq!(
        why.reason.as_deref(),
        Some(
            "evaluation failed: llama passed 1 of 3 cases (33.3%), below 90% of the stable backends' 100.0% (90.0%); failing: refund-json on llama: not JSON; order-json on llama: not JSON"
        )
    );
    let reasons: Vec<_> = d.events.iter().map(|e| (e.reason, e.warning)).collect();
    assert_eq!(reasons, [("EvaluationFailed", true), ("RolledBack", true)]);
    assert_eq!(
        st.evaluation.as_ref().unwrap().failing.len(),
        2,
        "the results stay in status"
    );
}

#[test]
fn every_step_replays_before_each_step_moves_on() {
    let mut sim = Sim::new(&gated(true));
    sim.evaluation = Some(EvaluationVerdict::Pass);
    sim.change("[{name: llama, weight: 100}]");
    sim.run(None, None);
    for _ in 0..12 {
        sim.tick(30, Verdict::Pass);
    }
    assert_eq!(sim.status.phase, Some(Phase::Stable));
    let steps: Vec<i32> = sim.evaluated.iter().map(|p| p.step).collect();
    assert_eq!(steps, [0, 1, 2]);

    // A failure at a later step rolls back from there.
    let mut sim = Sim::new(&gated(true));
    sim.evaluation = Some(EvaluationVerdict::Pass);
    sim.change("[{name: llama, weight: 100}]");
    sim.run(None, None);
    sim.tick(1, Verdict::Pass);
    assert_eq!(sim.status.step, Some(1));
    sim.evaluation = Some(EvaluationVerdict::Fail);
    sim.tick(1, Verdict::Pass);
    assert_eq!(sim.status.phase, Some(Phase::RolledBack));
}

#[test]
fn a_split_with_no_new_backend_is_not_gated() {
    let mut sim = Sim::new(&gated(false).replace(
        "[{name: openai, weight: 100}]",
        "[{name: openai, weight: 50}, {name: llama, weight: 50}]",
    ));
    sim.change("[{name: openai, weight: 10}, {name: llama, weight: 90}]");
    sim.run(None, None);
    assert_eq!(
        sim.status.step,
        Some(1),
        "llama already serves: nothing to replay"
    );
}
