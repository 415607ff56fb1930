use k8s_openapi::api::core::v1::Event;
use k8s_openapi::jiff::Timestamp;
use serde_json::json;

use super::render::{BAR_WIDTH, MAX_EVENTS, apportion, steps_line, weight_bars};
use super::*;
use crate::api::{ModelRoute, WeightedBackend};

const NOW: &str = "2026-03-01T12:00:00Z";

fn now() -> Timestamp {
    NOW.parse().unwrap()
}

fn route(status: serde_json::Value) -> ModelRoute {
    serde_json::from_value(json!({
        "apiVersion": "switchyard.dev/v1alpha1", "kind": "ModelRoute",
        "metadata": {"name": "chat", "namespace": "team-a", "uid": "u-1"},
        "spec": {"backends": [{"name": "candidate", "weight": 100}],
                 "rollout": {"steps": [5, 20, 50, 100], "stepDuration": "10m"}},
        "status": status,
    }))
    .unwrap()
}

fn migrating_at_step_2() -> ModelRoute {
    route(json!({
        "phase": "Progressing", "step": 2, "stepStartedAt": "2026-03-01T11:59:30Z",
        "stable": [{"name": "openai", "weight": 100}],
        "target": [{"name": "candidate", "weight": 100}],
        "weights": [{"name": "openai", "weight": 800}, {"name": "candidate", "weight": 200}],
        "lastAnalysis": {"time": "2026-03-01T11:59:55Z", "window": "1m", "verdict": "Fail", "checks": [
            {"name": "error-rate", "backend": "candidate", "value": 0.031, "threshold": "<= 0.02",
             "verdict": "Fail"},
            {"name": "latency-p95", "backend": "candidate", "value": 0.412, "threshold": "<= 2s",
             "verdict": "Pass"},
            {"name": "tokens", "threshold": ">= 10", "verdict": "Inconclusive",
             "reason": "fewer than 10 requests"},
        ]},
        "conditions": [
            {"type": "Ready", "status": "False", "reason": "Progressing", "message": "step 2/4",
             "lastTransitionTime": "2026-03-01T11:58:00Z"},
            {"type": "Reconciling", "status": "True", "reason": "Progressing", "message": "step 2/4",
             "lastTransitionTime": "2026-03-01T11:57:00Z"},
        ],
        "history": [
            {"from": [{"name": "a", "weight": 100}], "to": [{"name": "openai", "weight": 100}],
             "outcome": "Promoted", "startedAt": "2026-03-01T10:00:00Z", "finishedAt": "2026-03-01T10:30:00Z"},
            {"from": [{"name": "openai", "weight": 100}], "to": [{"name": "b", "weight": 100}],
             "outcome": "Aborted", "startedAt": "2026-03-01T11:00:00Z", "finishedAt": "2026-03-01T11:10:00Z",
             "reason": "aborted by an operator"},
        ],
    }))
}

fn event(reason: &str, at: &str, uid: &str) -> RouteEvent {
    RouteEvent {
        time: at.parse().unwrap(),
        kind: "Normal".into(),
        reason: reason.into(),
        message: format!("{reason} happened"),
        count: 1,
        uid: Some(uid.into()),
    }
}

fn show(mr: &ModelRoute, events: &[RouteEvent]) -> String {
    render(
        &View {
            route: mr,
            events,
            events_error: None,
        },
        now(),
    )
}

#[test]
fn steps_say_which_are_done_which_is_current_and_which_is_next() {
    assert_eq!(
        steps_line(&[5, 20, 50, 100], Some(2), true),
        "5% done -> 20% <- now -> 50% next -> 100%"
    );
    assert_eq!(
        steps_line(&[5, 20, 50, 100], Some(4), true),
        "5% done -> 20% done -> 50% done -> 100% <- now"
    );
    // Mirroring comes before step 1: nothing done yet, step 1 next.
    assert_eq!(steps_line(&[50, 100], None, true), "50% next -> 100%");
    // No migration: the steps a change would go through, unmarked.
    assert_eq!(steps_line(&[50, 100], None, false), "50% -> 100%");
    let text = show(&migrating_at_step_2(), &[]);
    assert!(
        text.contains("Steps:    5% done -> 20% <- now -> 50% next -> 100%   (each at least 10m, step started 30s ago)"),
        "{text}"
    );
}

#[test]
fn apportioned_parts_always_add_up_to_the_whole() {
    let cases: [&[u64]; 6] = [
        &[800, 200],
        &[1, 1, 1],
        &[333, 333, 334],
        &[999, 1],
        &[0, 0],
        &[7, 0, 13, 29],
    ];
    for weights in cases {
        for total in [BAR_WIDTH as u64, 1000] {
            let parts = apportion(weights, total);
            let want = if weights.iter().sum::<u64>() == 0 {
                0
            } else {
                total
            };
            assert_eq!(parts.iter().sum::<u64>(), want, "{weights:?} into {total}");
        }
    }
    // Largest remainder, ties to the earlier entry.
    assert_eq!(apportion(&[1, 1, 1], 1000), [334, 333, 333]);
    assert_eq!(apportion(&[999, 1], 40), [40, 0]);
}

/// Each bar's percent and its cells.
fn bars(weights: &[(&str, i32)]) -> Vec<(String, f64, usize)> {
    let ws: Vec<WeightedBackend> = weights
        .iter()
        .map(|(n, w)| WeightedBackend {
            name: n.to_string(),
            weight: *w,
        })
        .collect();
    weight_bars(&ws)
        .lines()
        .map(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            let bar = cells[2];
            assert_eq!(bar.len(), BAR_WIDTH + 2, "{l}");
            (
                cells[0].to_string(),
                cells[1].trim_end_matches('%').parse().unwrap(),
                bar.matches('#').count(),
            )
        })
        .collect()
}

#[test]
fn the_weight_bars_show_each_backend_in_percent_and_sum_to_100() {
    assert_eq!(
        bars(&[("openai", 800), ("candidate", 200)]),
        [
            ("openai".to_string(), 80.0, 32),
            ("candidate".to_string(), 20.0, 8)
        ]
    );
    for split in [
        &[("a", 333), ("b", 333), ("c", 334)][..],
        &[("a", 1), ("b", 1), ("c", 1)],
        &[("a", 975), ("b", 25)],
        &[("a", 600), ("b", 300), ("c", 100)],
    ] {
        let b = bars(split);
        let percent: f64 = b.iter().map(|(_, p, _)| p).sum();
        assert!((percent - 100.0).abs() < 1e-9, "{split:?}: {b:?}");
        assert_eq!(
            b.iter().map(|(_, _, c)| c).sum::<usize>(),
            BAR_WIDTH,
            "{split:?}"
        );
    }
    let text = show(&migrating_at_step_2(), &[]);
    assert!(
        text.contains("Weights:  openai=800,candidate=200   (what the gateway applies now)\n  openai       80.0%   [################################........]\n  candidate    20.0%   [########................................]\n"),
        "{text}"
    );
}

#[test]
fn the_last_analysis_shows_each_value_against_its_threshold_and_verdict() {
    let text = show(&migrating_at_step_2(), &[]);
    let table: Vec<Vec<&str>> = text
        .lines()
        .skip_while(|l| !l.starts_with("Last analysis"))
        .skip(1)
        .take(4)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(
        text.contains("Last analysis (5s ago, window 1m): Fail\n"),
        "{text}"
    );
    assert_eq!(table[0], ["check", "value", "threshold", "verdict"]);
    assert_eq!(
        table[1],
        ["error-rate", "[candidate]", "0.0310", "<=", "0.02", "Fail"]
    );
    assert_eq!(
        table[2],
        ["latency-p95", "[candidate]", "0.4120", "<=", "2s", "Pass"]
    );
    assert_eq!(
        table[3],
        [
            "tokens",
            "no",
            "data",
            ">=",
            "10",
            "Inconclusive",
            "(fewer",
            "than",
            "10",
            "requests)"
        ]
    );
}

#[test]
fn history_lists_conditions_migrations_and_events_newest_last() {
    let events = [
        event("StepAdvanced", "2026-03-01T11:59:30Z", "u-1"),
        event("MigrationStarted", "2026-03-01T11:58:00Z", "u-1"),
        // Of an earlier route of the same name: not this route's history.
        event("RolledBack", "2026-03-01T09:00:00Z", "u-0"),
    ];
    let text = show(&migrating_at_step_2(), &events);
    let order = |needles: &[&str]| {
        let at: Vec<usize> = needles
            .iter()
            .map(|n| {
                text.find(n)
                    .unwrap_or_else(|| panic!("{n} missing:\n{text}"))
            })
            .collect();
        assert!(
            at.windows(2).all(|w| w[0] < w[1]),
            "{needles:?} out of order:\n{text}"
        );
    };
    order(&["Conditions:", "\n  Reconciling ", "\n  Ready "]);
    order(&[
        "Migrations (newest last):",
        "Promoted",
        "Aborted: aborted by an operator",
    ]);
    order(&["Events (newest last):", "MigrationStarted", "StepAdvanced"]);
    assert!(!text.contains("RolledBack"), "{text}");
    assert!(
        text.contains("  2m0s ago    Normal   MigrationStarted   MigrationStarted happened\n"),
        "{text}"
    );

    // Only the most recent Events are shown, and the count says so.
    let many: Vec<RouteEvent> = (0..MAX_EVENTS + 3)
        .map(|i| {
            event(
                &format!("E{i:02}"),
                &format!("2026-03-01T11:{i:02}:00Z"),
                "u-1",
            )
        })
        .collect();
    let text = show(&migrating_at_step_2(), &many);
    assert!(text.contains(&format!(
        "Events (newest last, {MAX_EVENTS} of {}):",
        MAX_EVENTS + 3
    )));
    assert!(
        !text.contains("E02") && text.contains("E03") && text.contains("E12"),
        "{text}"
    );

    let text = render(
        &View {
            route: &migrating_at_step_2(),
            events: &[],
            events_error: Some("events is forbidden"),
        },
        now(),
    );
    assert!(
        text.contains("Events:   not shown: events is forbidden\n"),
        "{text}"
    );
}

#[test]
fn a_stable_route_marks_no_step_and_has_no_analysis_yet() {
    let mr = route(json!({
        "phase": "Stable",
        "stable": [{"name": "candidate", "weight": 100}],
        "weights": [{"name": "candidate", "weight": 1000}],
    }));
    let text = show(&mr, &[]);
    assert!(text.contains("Phase:    Stable\n"), "{text}");
    assert!(
        text.contains("Steps:    5% -> 20% -> 50% -> 100%   (each at least 10m)\n"),
        "{text}"
    );
    assert!(
        text.contains("  candidate   100.0%   [########################################]\n"),
        "{text}"
    );
    assert!(
        text.contains("Last analysis: none yet\nEvents:   none\n"),
        "{text}"
    );
    assert!(!text.contains("Target:"), "{text}");
}

#[test]
fn events_are_read_from_series_or_legacy_fields() {
    let e: Event = serde_json::from_value(json!({
        "metadata": {"name": "x", "creationTimestamp": "2026-03-01T10:00:00Z"},
        "involvedObject": {"kind": "ModelRoute", "name": "chat", "uid": "u-1"},
        "reason": "AnalysisInconclusive", "message": "fewer than 10 requests", "type": "Warning",
        "eventTime": "2026-03-01T10:00:00.000000Z",
        "series": {"count": 4, "lastObservedTime": "2026-03-01T10:03:00.000000Z"},
    }))
    .unwrap();
    let r = RouteEvent::from_event(&e).unwrap();
    assert_eq!(r.time, "2026-03-01T10:03:00Z".parse::<Timestamp>().unwrap());
    assert_eq!(
        (r.count, r.kind.as_str(), r.uid.as_deref()),
        (4, "Warning", Some("u-1"))
    );
    let legacy: Event = serde_json::from_value(json!({
        "metadata": {"name": "y"},
        "involvedObject": {"kind": "ModelRoute", "name": "chat"},
        "reason": "Promoted", "message": "done", "count": 2,
        "lastTimestamp": "2026-03-01T11:00:00Z",
    }))
    .unwrap();
    let r = RouteEvent::from_event(&legacy).unwrap();
    assert_eq!(r.time, "2026-03-01T11:00:00Z".parse::<Timestamp>().unwrap());
    assert_eq!((r.count, r.kind.as_str()), (2, "Normal"));
}

#[test]
fn a_terminal_gets_the_screen_redrawn_in_place_and_a_pipe_gets_plain_blocks() {
    let text = "Route chat\nPhase:    Stable\n";
    let tty = frame(text, true, false);
    assert_eq!(
        tty,
        "\x1b[HRoute chat\x1b[K\nPhase:    Stable\x1b[K\n\x1b[J"
    );
    assert_eq!(
        frame(text, true, true),
        tty,
        "the first screen also starts at home"
    );
    assert_eq!(frame(text, false, true), text);
    let later = frame(text, false, false);
    assert_eq!(
        later,
        format!("\n{text}"),
        "blocks are separated by a blank line"
    );
    assert!(!later.contains('\x1b'));
}

#[test]
fn the_evaluation_shows_its_verdict_pass_counts_and_failing_cases() {
    let e: crate::api::EvaluationStatus = serde_json::from_value(serde_json::json!({
        "time": "2026-01-01T00:00:00Z", "step": 0, "verdict": "Fail",
        "message": "llama passed 1 of 2 cases (50.0%), below 90% of the stable backends' 100.0% (90.0%)",
        "backends": [{"backend": "openai", "stable": true, "passed": 2, "total": 2},
                     {"backend": "llama", "stable": false, "passed": 1, "total": 2}],
        "failing": [{"backend": "llama", "case": "refund-json", "reason": "not JSON"}]
    }))
    .unwrap();
    assert_eq!(
        super::render::evaluation(&e),
        "Evaluation (step 0): Fail: llama passed 1 of 2 cases (50.0%), below 90% of the stable backends' 100.0% (90.0%)\n  openai (stable): 2 of 2 passed\n  llama (new): 1 of 2 passed\n  failing: refund-json on llama: not JSON\n"
    );
}

#[test]
fn a_post_cutover_shadow_shows_what_is_compared_until_when_and_what_drifted() {
    let shadow = |phase: &str, extra: serde_json::Value| {
        let mut pc = json!({
            "phase": phase, "backends": ["openai"], "comparedWith": ["candidate"], "percent": 10,
            "startedAt": "2026-03-01T11:00:00Z", "until": "2026-03-01T13:00:00Z",
            "analyses": 7, "inconclusive": 1,
            "drift": [{"check": "output-tokens-vs-stable", "backend": "openai", "count": 5,
                       "value": 29.6, "baseline": 20.0}],
        });
        pc.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        route(json!({
            "phase": "Stable", "stable": [{"name": "candidate", "weight": 100}],
            "weights": [{"name": "candidate", "weight": 1000}],
            "mirror": {"percent": 10, "backends": ["openai"]},
            "postCutover": pc,
        }))
    };
    let text = show(&shadow("Shadowing", json!({})), &[]);
    assert!(
        text.contains(
            "Shadow:   old backend openai gets 10% of requests as copies, compared with candidate for 1h more; 7 analyses, 1 inconclusive\n"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "  drift:  output-tokens-vs-stable of openai in 5 of 7 analyses (latest 29.6 vs 20 on the new split)\n"
        ),
        "{text}"
    );
    let ended = shadow(
        "Drifted",
        json!({"finishedAt": "2026-03-01T11:58:00Z", "message": "old backend openai drifted"}),
    );
    let text = show(&ended, &[]);
    assert!(
        text.contains("Shadow:   Drifted 2m0s ago: old backend openai drifted\n"),
        "{text}"
    );
    // A route that never shadowed has no such line.
    assert!(!show(&migrating_at_step_2(), &[]).contains("Shadow:"));
}
