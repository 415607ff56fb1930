//! The shadow after a cutover, driven through whole migrations with the engine's simulated
//! clock: it starts on promotion, judges the old backend against the new split, never rolls
//! anything back, and ends with an Event saying whether the old backend can go.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::commands::CommandKind;
use super::engine::*;
use super::engine_tests::{STEPS, Sim, ready, split};
use crate::api::{
    AnalysisResult, CheckResult, Duration, MirrorStatus, Phase, PostCutoverPhase, Verdict,
};

const SHADOW: &str = "  postCutoverShadow: {percent: 50, duration: 10m}\n";

fn route(backends: &str) -> Sim {
    Sim::new(&format!("backends: {backends}{STEPS}{SHADOW}"))
}

/// Migrates to `to` with passing analyses until it is promoted.
fn promote_to(sim: &mut Sim, to: &str) {
    sim.change(to);
    sim.run(None, None);
    for _ in 0..40 {
        sim.tick(30, Verdict::Pass);
        if sim.status.target.is_empty() {
            break;
        }
    }
    assert_eq!(sim.status.phase, Some(Phase::Stable));
    assert!(sim.reasons().contains(&"Promoted"));
}

/// Moves the clock and, when an analysis is due, answers it with `make(now)`.
fn tick_with(sim: &mut Sim, secs: i64, make: impl Fn(Timestamp) -> AnalysisResult) -> Decision {
    sim.now = sim
        .now
        .checked_add(SignedDuration::from_secs(secs))
        .unwrap();
    let analysis = analysis_due(&sim.spec, &sim.status, sim.now).map(|_| make(sim.now));
    sim.run(analysis, None)
}

/// The old backend `a` answers 30 output tokens per request where the new split answers 20.
fn longer_answers(now: Timestamp) -> AnalysisResult {
    AnalysisResult {
        time: Time(now),
        window: None,
        verdict: Verdict::Fail,
        checks: vec![CheckResult {
            name: "output-tokens-vs-stable".into(),
            backend: Some("a".into()),
            value: Some(30.0),
            baseline: Some(20.0),
            threshold: "[19, 21]".into(),
            verdict: Verdict::Fail,
            reason: Some("a 30 tokens vs stable 20 tokens (+50.0%)".into()),
        }],
    }
}

fn phase(sim: &Sim) -> Option<PostCutoverPhase> {
    sim.status.post_cutover.as_ref().map(|p| p.phase)
}

fn last_event(sim: &Sim) -> &Event {
    sim.events.last().unwrap()
}

#[test]
fn a_promotion_shadows_the_old_backend_while_the_route_stays_stable_and_ready() {
    let mut sim = route("[{name: a, weight: 100}]");
    promote_to(&mut sim, "[{name: b, weight: 100}]");

    let pc = sim.status.post_cutover.clone().unwrap();
    assert_eq!(pc.phase, PostCutoverPhase::Shadowing);
    assert_eq!(
        (pc.backends, pc.compared_with),
        (vec!["a".into()], vec!["b".into()])
    );
    assert_eq!(pc.percent, 50);
    assert_eq!(
        pc.until.0,
        pc.started_at
            .0
            .checked_add(SignedDuration::from_mins(10))
            .unwrap()
    );
    // The gateway copies to the old backend; all live traffic is the new split's.
    assert_eq!(
        sim.status.mirror,
        Some(MirrorStatus {
            percent: 50,
            backends: vec!["a".into()]
        })
    );
    assert_eq!(sim.status.weights, split(&[("b", 1000)]));
    assert_eq!(sim.status.phase, Some(Phase::Stable));
    assert_eq!(ready(&sim.status), Some("True"));
    let started = sim
        .events
        .iter()
        .find(|e| e.reason == "ShadowStarted")
        .unwrap();
    assert!(
        started.message.contains("old backend a for 10m"),
        "{}",
        started.message
    );

    // The controller comes back for the next analysis, which judges the old backend's copies
    // against the new split's live traffic.
    let d = sim.run(None, None);
    assert!(d.requeue.unwrap() <= std::time::Duration::from_secs(30));
    sim.now = sim.now.checked_add(SignedDuration::from_secs(30)).unwrap();
    assert_eq!(
        analysis_due(&sim.spec, &sim.status, sim.now),
        Some(AnalysisPlan {
            gaining: vec!["a".into()],
            baseline: vec!["b".into()],
            mirror: true,
        })
    );
}

#[test]
fn no_shadow_without_the_setting_or_without_a_retired_backend() {
    let mut sim = Sim::new(&format!("backends: [{{name: a, weight: 100}}]{STEPS}"));
    promote_to(&mut sim, "[{name: b, weight: 100}]");
    assert_eq!(sim.status.post_cutover, None);
    assert_eq!(sim.status.mirror, None);

    // a keeps half the traffic: nothing to decommission, nothing to shadow.
    let mut sim = route("[{name: a, weight: 100}]");
    promote_to(&mut sim, "[{name: a, weight: 50}, {name: b, weight: 50}]");
    assert_eq!(sim.status.post_cutover, None);
    assert_eq!(sim.status.mirror, None);
    assert!(!sim.reasons().contains(&"ShadowStarted"));
}

#[test]
fn an_operator_promotion_shadows_a_backend_drained_to_weight_zero() {
    let mut sim = route("[{name: a, weight: 60}, {name: c, weight: 40}]");
    sim.change("[{name: a, weight: 0}, {name: b, weight: 60}, {name: c, weight: 40}]");
    sim.run(None, None);
    sim.command("1", CommandKind::PromoteFull);
    assert_eq!(phase(&sim), Some(PostCutoverPhase::Shadowing));
    let pc = sim.status.post_cutover.as_ref().unwrap();
    assert_eq!(pc.backends, ["a"]);
    assert_eq!(pc.compared_with, ["b", "c"]);
    assert_eq!(sim.status.mirror.as_ref().unwrap().backends, ["a"]);
}

#[test]
fn a_clean_shadow_ends_at_until_saying_the_old_backend_can_be_decommissioned() {
    let mut sim = route("[{name: a, weight: 100}]");
    promote_to(&mut sim, "[{name: b, weight: 100}]");
    let until = sim.status.post_cutover.as_ref().unwrap().until.0;
    while sim.now < until {
        sim.tick(30, Verdict::Pass);
        if sim.now < until {
            assert_eq!(phase(&sim), Some(PostCutoverPhase::Shadowing));
        }
    }
    let pc = sim.status.post_cutover.clone().unwrap();
    assert_eq!(pc.phase, PostCutoverPhase::Matched);
    assert_eq!(pc.analyses, 20, "one analysis per 30 s interval over 10m");
    assert!(pc.drift.is_empty() && pc.discrepancies.is_empty());
    assert_eq!(pc.finished_at, Some(Time(until)));
    assert_eq!(sim.status.mirror, None, "the gateway stops copying");
    let e = last_event(&sim);
    assert_eq!((e.reason, e.warning), ("ShadowCompleted", false));
    assert_eq!(
        e.message,
        "old backend a matched the new split (b) over 10m (20 analyses): it can be decommissioned"
    );
    // The summary also stays with the promotion in history.
    let record = sim.status.history.last().unwrap();
    assert!(
        record
            .post_cutover
            .as_deref()
            .unwrap()
            .starts_with("Matched: old backend a matched"),
        "{record:?}"
    );
    // Over: nothing more to analyse or wake up for.
    let d = sim.tick(60, Verdict::Pass);
    assert_eq!(d.requeue, None);
    assert!(analysis_due(&sim.spec, &sim.status, sim.now).is_none());
}

#[test]
fn a_token_drift_is_recorded_bounded_never_rolls_back_and_ends_with_a_warning() {
    let mut sim = route("[{name: a, weight: 100}]");
    promote_to(&mut sim, "[{name: b, weight: 100}]");
    let until = sim.status.post_cutover.as_ref().unwrap().until.0;
    let mut n = 0;
    while sim.now < until {
        n += 1;
        // Every other analysis finds the old backend's answers longer.
        if n % 2 == 0 {
            tick_with(&mut sim, 30, longer_answers);
        } else {
            sim.tick(30, Verdict::Pass);
        }
        // A discrepancy never moves traffic: the cutover is done.
        assert_eq!(sim.status.stable, split(&[("b", 100)]));
        assert_eq!(sim.status.weights, split(&[("b", 1000)]));
        assert_eq!(sim.status.phase, Some(Phase::Stable));
        assert_eq!(ready(&sim.status), Some("True"));
    }
    assert!(!sim.reasons().contains(&"RolledBack"));
    let pc = sim.status.post_cutover.clone().unwrap();
    assert_eq!(pc.phase, PostCutoverPhase::Drifted);
    assert_eq!(pc.analyses, 20);
    assert_eq!(pc.drift.len(), 1);
    let d = &pc.drift[0];
    assert_eq!(
        (d.check.as_str(), d.backend.as_str(), d.count),
        ("output-tokens-vs-stable", "a", 10)
    );
    assert_eq!((d.value, d.baseline), (Some(30.0), Some(20.0)));
    // The list keeps the latest ten (here exactly the ten), the counts keep the rest.
    assert_eq!(pc.discrepancies.len(), 10);
    let newest = pc.discrepancies.last().unwrap();
    assert_eq!(newest.backend, "a");
    assert_eq!((newest.value, newest.baseline), (Some(30.0), Some(20.0)));
    assert_eq!(newest.threshold, "[19, 21]");
    let e = last_event(&sim);
    assert_eq!((e.reason, e.warning), ("ShadowDrift", true));
    assert_eq!(
        e.message,
        "old backend a drifted from the new split over 10m: output-tokens-vs-stable: a answered 50% longer than b in 10 of 20 analyses; check before decommissioning it"
    );
    assert_eq!(sim.status.mirror, None);
}

#[test]
fn discrepancies_are_bounded_to_the_latest_ten() {
    let mut sim = route("[{name: a, weight: 100}]");
    promote_to(&mut sim, "[{name: b, weight: 100}]");
    for _ in 0..15 {
        tick_with(&mut sim, 30, longer_answers);
    }
    let pc = sim.status.post_cutover.clone().unwrap();
    assert_eq!(pc.phase, PostCutoverPhase::Shadowing);
    assert_eq!(pc.drift[0].count, 15);
    assert_eq!(
        pc.discrepancies.len(),
        super::post_cutover::DISCREPANCY_LIMIT
    );
    assert_eq!(pc.discrepancies.last().unwrap().time, Time(sim.now));
}

#[test]
fn a_spec_change_ends_the_shadow_and_starts_the_new_migration() {
    let mut sim = route("[{name: a, weight: 100}]");
    promote_to(&mut sim, "[{name: b, weight: 100}]");
    tick_with(&mut sim, 30, longer_answers);
    sim.change("[{name: c, weight: 100}]");
    sim.run(None, None);
    let pc = sim.status.post_cutover.clone().unwrap();
    assert_eq!(pc.phase, PostCutoverPhase::Superseded);
    assert!(
        pc.message
            .as_deref()
            .unwrap()
            .contains("spec.backends changed"),
        "{pc:?}"
    );
    assert_eq!(pc.drift[0].count, 1, "what it found so far stays");
    assert_eq!(sim.status.mirror, None);
    assert_eq!(sim.status.target, split(&[("c", 100)]));
    assert_eq!(sim.status.weights, split(&[("b", 950), ("c", 50)]));
    let reasons = sim.reasons();
    let ended = reasons.iter().rposition(|r| *r == "ShadowEnded").unwrap();
    let started = reasons
        .iter()
        .rposition(|r| *r == "MigrationStarted")
        .unwrap();
    assert!(ended < started, "{reasons:?}");
}

#[test]
fn deleting_the_old_backend_ends_the_shadow() {
    let mut sim = route("[{name: a, weight: 100}]");
    promote_to(&mut sim, "[{name: b, weight: 100}]");
    sim.tick(30, Verdict::Pass);
    sim.gone = vec!["a".into()];
    sim.run(None, None);
    let pc = sim.status.post_cutover.clone().unwrap();
    assert_eq!(pc.phase, PostCutoverPhase::BackendDeleted);
    assert_eq!(
        pc.message.as_deref(),
        Some("a deleted; the shadow stopped after 1 analyses")
    );
    assert_eq!(sim.status.mirror, None, "the finalizer holding a can go");
    assert_eq!(last_event(&sim).reason, "ShadowEnded");
    assert_eq!(sim.status.phase, Some(Phase::Stable));
}

#[test]
fn a_shadow_that_could_never_judge_says_nothing_is_known() {
    let mut sim = route("[{name: a, weight: 100}]");
    promote_to(&mut sim, "[{name: b, weight: 100}]");
    let until = sim.status.post_cutover.as_ref().unwrap().until.0;
    while sim.now < until {
        sim.tick(30, Verdict::Inconclusive);
    }
    let pc = sim.status.post_cutover.clone().unwrap();
    assert_eq!(pc.phase, PostCutoverPhase::Inconclusive);
    assert_eq!((pc.analyses, pc.inconclusive), (0, 20));
    let e = last_event(&sim);
    assert_eq!((e.reason, e.warning), ("ShadowInconclusive", true));
    assert!(e.message.contains("nothing is known"), "{}", e.message);
}

#[test]
fn analyses_whose_window_reaches_before_the_cutover_are_not_counted() {
    let mut sim = route("[{name: a, weight: 100}]");
    promote_to(&mut sim, "[{name: b, weight: 100}]");
    let windowed = |now| AnalysisResult {
        window: Some(Duration::from("2m")),
        ..longer_answers(now)
    };
    for _ in 0..3 {
        tick_with(&mut sim, 30, windowed);
    }
    let pc = sim.status.post_cutover.as_ref().unwrap();
    assert_eq!((pc.analyses, pc.inconclusive), (0, 0));
    assert!(pc.drift.is_empty());
    tick_with(&mut sim, 30, windowed);
    let pc = sim.status.post_cutover.as_ref().unwrap();
    assert_eq!(pc.analyses, 1);
    assert_eq!(pc.drift[0].count, 1);
}
