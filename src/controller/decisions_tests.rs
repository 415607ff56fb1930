//! The exporter seen as Prometheus sees it: the registry rendered in the text format.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use prometheus::{Encoder, Registry, TextEncoder};

use super::*;

type Labels = BTreeMap<String, String>;

struct Exporter {
    registry: Registry,
    decisions: Decisions,
}

impl Exporter {
    fn new() -> Self {
        let registry = Registry::new();
        let decisions = Decisions::register(&registry).unwrap();
        Self {
            registry,
            decisions,
        }
    }

    /// Every sample of `name` as (labels, value), from the text exposition.
    fn series(&self, name: &str) -> Vec<(Labels, f64)> {
        let mut buf = vec![];
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .unwrap();
        let text = String::from_utf8(buf).unwrap();
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (metric, value) = l.rsplit_once(' ')?;
                let (n, labels) = metric.split_once('{').unwrap_or((metric, "}"));
                (n == name).then(|| {
                    let labels = labels
                        .trim_end_matches('}')
                        .split(',')
                        .filter(|p| !p.is_empty())
                        .map(|p| {
                            let (k, v) = p.split_once('=').unwrap();
                            (k.to_owned(), v.trim_matches('"').to_owned())
                        })
                        .collect();
                    (labels, value.parse().unwrap())
                })
            })
            .collect()
    }

    /// The value of the one sample of `name` carrying `labels` (others may be present).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let matching: Vec<f64> = self
            .series(name)
            .into_iter()
            .filter(|(l, _)| {
                labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, v)| v)
            .collect();
        assert!(matching.len() <= 1, "{name} {labels:?}: {matching:?}");
        matching.first().copied()
    }

    fn observe(&self, before: &ModelRouteStatus, after: &ModelRouteStatus) {
        self.decisions.observe("prod", "chat", before, after);
    }
}

fn status(yaml: &str) -> ModelRouteStatus {
    serde_yaml::from_str(yaml).unwrap()
}

/// Step 2 of 4 from openai to llama, with an analysis at `time`.
fn migrating(time: &str, verdict: &str) -> ModelRouteStatus {
    status(&format!(
        r#"
phase: Progressing
step: 2
weights: [{{name: openai, weight: 800}}, {{name: llama, weight: 200}}]
rollout: {{steps: [5, 20, 50, 100], stepDuration: 10s}}
lastAnalysis:
  time: "{time}"
  verdict: {verdict}
  checks:
    - {{name: error-rate, backend: llama, value: 0.004, threshold: "<= 0.02", verdict: {verdict}}}
    - {{name: latency-p95, backend: llama, value: 0.31, threshold: "<= 2", verdict: Pass}}
    - {{name: quality, value: 0.95, threshold: ">= 0.9", verdict: Pass}}
    - {{name: tokens, backend: llama, threshold: "[1, 5]", verdict: Inconclusive}}
"#
    ))
}

const ROUTE: [(&str, &str); 2] = [("namespace", "prod"), ("route", "chat")];

fn with<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    [&ROUTE[..], extra].concat()
}

#[test]
fn phase_step_and_weights_are_exported_for_a_running_migration() {
    let e = Exporter::new();
    let st = migrating("2025-01-01T10:00:00Z", "Pass");
    e.observe(&ModelRouteStatus::default(), &st);
    for (phase, want) in [
        ("Progressing", 1.0),
        ("Stable", 0.0),
        ("Mirroring", 0.0),
        ("Holding", 0.0),
        ("Paused", 0.0),
        ("RolledBack", 0.0),
    ] {
        let got = e.value("switchyard_route_phase", &with(&[("phase", phase)]));
        assert_eq!(got, Some(want), "{phase}");
    }
    assert_eq!(e.series("switchyard_route_phase").len(), 6);
    assert_eq!(e.value("switchyard_route_step", &ROUTE), Some(2.0));
    assert_eq!(e.value("switchyard_route_steps", &ROUTE), Some(4.0));
    let weight = |b| e.value("switchyard_route_weight", &with(&[("backend", b)]));
    assert_eq!(
        (weight("openai"), weight("llama")),
        (Some(800.0), Some(200.0))
    );

    // Promoted: no step, no running migration, llama alone; openai's series goes.
    e.observe(
        &st,
        &status("phase: Stable\nweights: [{name: llama, weight: 1000}]"),
    );
    assert_eq!(e.value("switchyard_route_step", &ROUTE), Some(0.0));
    assert_eq!(e.value("switchyard_route_steps", &ROUTE), Some(0.0));
    assert_eq!(weight("llama"), Some(1000.0));
    assert_eq!(
        weight("openai"),
        None,
        "a backend that left keeps no series"
    );
    assert_eq!(
        e.value("switchyard_route_phase", &with(&[("phase", "Stable")])),
        Some(1.0)
    );
}

#[test]
fn check_values_and_parsed_thresholds_follow_the_latest_analysis() {
    let e = Exporter::new();
    e.observe(
        &ModelRouteStatus::default(),
        &migrating("2025-01-01T10:00:00Z", "Pass"),
    );
    let value = |check, backend| {
        e.value(
            "switchyard_analysis_check_value",
            &with(&[("check", check), ("backend", backend)]),
        )
    };
    let bound = |check, backend, bound| {
        e.value(
            "switchyard_analysis_check_threshold",
            &with(&[("check", check), ("backend", backend), ("bound", bound)]),
        )
    };
    assert_eq!(value("error-rate", "llama"), Some(0.004));
    assert_eq!(bound("error-rate", "llama", "max"), Some(0.02));
    assert_eq!(bound("error-rate", "llama", "min"), None);
    assert_eq!(value("quality", ""), Some(0.95), "no backend: backend=\"\"");
    assert_eq!(bound("quality", "", "min"), Some(0.9));
    assert_eq!(
        value("tokens", "llama"),
        None,
        "no value measured, no series"
    );
    assert_eq!(bound("tokens", "llama", "min"), Some(1.0));
    assert_eq!(bound("tokens", "llama", "max"), Some(5.0));

    // The next analysis has only the error rate: the other checks' series go.
    e.observe(
        &ModelRouteStatus::default(),
        &status(
            r#"
phase: Progressing
lastAnalysis:
  time: "2025-01-01T10:00:10Z"
  verdict: Fail
  checks: [{name: error-rate, backend: llama, value: 0.05, threshold: "<= 0.02", verdict: Fail}]
"#,
        ),
    );
    assert_eq!(value("error-rate", "llama"), Some(0.05));
    assert_eq!(value("latency-p95", "llama"), None);
    assert_eq!(bound("tokens", "llama", "max"), None);
    assert_eq!(e.series("switchyard_analysis_check_threshold").len(), 1);
}

#[test]
fn thresholds_are_parsed_as_written_in_status() {
    assert_eq!(parse_threshold("<= 0.02"), [("max", 0.02)]);
    assert_eq!(parse_threshold(">= 0.9"), [("min", 0.9)]);
    assert_eq!(parse_threshold("[1, 5]"), [("min", 1.0), ("max", 5.0)]);
    assert_eq!(
        parse_threshold("[0.25,1e-3]"),
        [("min", 0.25), ("max", 0.001)]
    );
    for unreadable in [
        "none",
        "relative to the stable backends",
        "<= x",
        "[1]",
        "<= NaN",
    ] {
        assert!(parse_threshold(unreadable).is_empty(), "{unreadable}");
    }
}

#[test]
fn each_analysis_is_counted_once_however_often_it_is_observed() {
    let e = Exporter::new();
    let verdicts = |check, verdict| {
        e.value(
            "switchyard_analysis_verdicts_total",
            &with(&[("check", check), ("verdict", verdict)]),
        )
    };
    let first = migrating("2025-01-01T10:00:00Z", "Pass");
    e.observe(&ModelRouteStatus::default(), &first);
    // Reconciles that change nothing, and the stored object read back (whole seconds).
    e.observe(&first, &first);
    let mut stored = first.clone();
    stored.last_analysis.as_mut().unwrap().time = Time("2025-01-01T10:00:00.734Z".parse().unwrap());
    e.observe(&stored, &first);
    e.observe(&first, &stored);
    assert_eq!(verdicts("error-rate", "Pass"), Some(1.0));
    assert_eq!(verdicts("error-rate", "Fail"), Some(0.0), "exported at 0");
    assert_eq!(verdicts("latency-p95", "Pass"), Some(1.0));
    assert_eq!(verdicts("tokens", "Inconclusive"), Some(1.0));

    e.observe(&first, &migrating("2025-01-01T10:00:10Z", "Fail"));
    e.observe(&first, &migrating("2025-01-01T10:00:10Z", "Fail"));
    assert_eq!(verdicts("error-rate", "Pass"), Some(1.0));
    assert_eq!(verdicts("error-rate", "Fail"), Some(1.0));
    assert_eq!(verdicts("latency-p95", "Pass"), Some(2.0));
}

#[test]
fn a_restarted_leader_counts_only_what_it_decides() {
    let e = Exporter::new();
    let before = migrating("2025-01-01T10:00:00Z", "Pass");
    // First sight of the route: the analysis already in status was decided before.
    e.observe(&before, &before);
    let pass = &with(&[("check", "error-rate"), ("verdict", "Pass")]);
    assert_eq!(
        e.value("switchyard_analysis_verdicts_total", pass),
        Some(0.0)
    );
    // First sight, and this reconcile ran a new analysis.
    let e = Exporter::new();
    e.observe(&before, &migrating("2025-01-01T10:00:10Z", "Pass"));
    assert_eq!(
        e.value("switchyard_analysis_verdicts_total", pass),
        Some(1.0)
    );
}

fn history(records: &[(&str, &str)]) -> ModelRouteStatus {
    let records: Vec<String> = records
        .iter()
        .map(|(outcome, at)| {
            format!(
                "{{from: [{{name: a, weight: 1}}], to: [{{name: b, weight: 1}}], outcome: {outcome}, startedAt: '2025-01-01T09:00:00Z', finishedAt: '{at}'}}"
            )
        })
        .collect();
    status(&format!("phase: Stable\nhistory: [{}]", records.join(", ")))
}

#[test]
fn finished_migrations_are_counted_when_history_grows_even_when_it_is_full() {
    let e = Exporter::new();
    let outcome = |o| e.value("switchyard_migrations_total", &with(&[("outcome", o)]));
    let old = history(&[("Promoted", "2025-01-01T09:10:00Z")]);
    e.observe(&old, &old);
    assert_eq!(
        outcome("Promoted"),
        Some(0.0),
        "already in status at first sight"
    );
    assert_eq!(outcome("RolledBack"), Some(0.0));
    let grown = history(&[
        ("Promoted", "2025-01-01T09:10:00Z"),
        ("RolledBack", "2025-01-01T09:20:00Z"),
    ]);
    e.observe(&old, &grown);
    e.observe(&grown, &grown);
    assert_eq!(outcome("RolledBack"), Some(1.0));
    assert_eq!(outcome("Promoted"), Some(0.0));
    // Bounded: the oldest record drops out as the newest comes in.
    let shifted = history(&[
        ("RolledBack", "2025-01-01T09:20:00Z"),
        ("Aborted", "2025-01-01T09:30:00Z"),
    ]);
    e.observe(&grown, &shifted);
    e.observe(&shifted, &shifted);
    assert_eq!(outcome("Aborted"), Some(1.0));
    assert_eq!(outcome("RolledBack"), Some(1.0));
    assert_eq!(outcome("Promoted"), Some(0.0));
}

#[test]
fn a_deleted_route_leaves_no_series_and_others_keep_theirs() {
    let e = Exporter::new();
    let st = migrating("2025-01-01T10:00:00Z", "Pass");
    e.observe(&ModelRouteStatus::default(), &st);
    e.decisions
        .observe("prod", "other", &ModelRouteStatus::default(), &st);
    let names = [
        "switchyard_route_phase",
        "switchyard_route_step",
        "switchyard_route_steps",
        "switchyard_route_weight",
        "switchyard_analysis_check_value",
        "switchyard_analysis_check_threshold",
        "switchyard_analysis_verdicts_total",
        "switchyard_migrations_total",
    ];
    let of = |route: &str| {
        names
            .iter()
            .flat_map(|n| e.series(n))
            .filter(|(l, _)| l["route"] == route)
            .count()
    };
    assert!(of("chat") > 20 && of("other") == of("chat"));
    e.decisions.forget("prod", "chat");
    assert_eq!(of("chat"), 0);
    assert!(of("other") > 20);
    // After a relist, routes that are gone are forgotten.
    e.decisions.retain(|_, name| name != "other");
    assert_eq!(of("other"), 0);
    // A replica that stops leading exports no decisions.
    e.observe(&ModelRouteStatus::default(), &st);
    e.decisions.clear();
    assert_eq!(of("chat"), 0);
}
