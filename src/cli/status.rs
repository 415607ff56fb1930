//! The text `kubectl switchyard status` prints.

use std::fmt::Write;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use crate::api::{ModelRoute, find_condition};
use crate::migration::{self, weights_summary};

fn ago(now: Timestamp, t: Timestamp) -> String {
    let s = now.as_second() - t.as_second();
    match s {
        ..=59 => format!("{s}s ago"),
        60..=3599 => format!("{}m{}s ago", s / 60, s % 60),
        _ => format!("{}h{}m ago", s / 3600, (s % 3600) / 60),
    }
}

pub fn render(mr: &ModelRoute, now: Timestamp) -> String {
    let mut out = String::new();
    let st = mr.status.clone().unwrap_or_default();
    let cfg = migration::settings(&mr.spec, &st);
    let name = mr.name_any();
    let _ = writeln!(
        out,
        "Route {name} (namespace {}), model {:?}",
        mr.namespace().unwrap_or_default(),
        mr.spec.model_name(&name)
    );
    let ready = find_condition(&st.conditions, "Ready");
    let _ = writeln!(
        out,
        "Phase:    {}{}",
        st.phase.map_or("-".into(), |p| format!("{p:?}")),
        ready.map_or(String::new(), |c| format!(
            "   Ready={} ({})",
            c.status, c.reason
        ))
    );
    let current = st.step.unwrap_or(0);
    let steps: Vec<String> = cfg
        .steps
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let i = i as i32 + 1;
            let mark = if st.target.is_empty() || i > current {
                ""
            } else if i == current {
                " <- now"
            } else {
                " done"
            };
            format!("{p}%{mark}")
        })
        .collect();
    let started = st.step_started_at.as_ref().map_or(String::new(), |t| {
        format!(", step started {}", ago(now, t.0))
    });
    let _ = writeln!(
        out,
        "Steps:    {}   (each at least {}{started})",
        steps.join(" -> "),
        crate::duration::format(cfg.step_duration)
    );
    if st.rollout.is_some() {
        let _ = writeln!(
            out,
            "Settings: fixed when this migration started (status.rollout){}",
            if migration::settings::edited_mid_migration(&mr.spec, &st) {
                "; spec.rollout has changed since and applies to the next migration"
            } else {
                ""
            }
        );
    }
    let _ = writeln!(out, "Stable:   {}", weights_summary(&st.stable));
    if !st.target.is_empty() {
        let _ = writeln!(out, "Target:   {}", weights_summary(&st.target));
    }
    let _ = writeln!(
        out,
        "Weights:  {}   (what the gateway applies now)",
        weights_summary(&st.weights)
    );
    if let Some(m) = &st.mirror {
        let _ = writeln!(
            out,
            "Mirror:   {}% of requests copied to {}",
            m.percent,
            m.backends.join(", ")
        );
    }
    if let Some(c) = find_condition(&st.conditions, "Stalled") {
        let _ = writeln!(out, "Stalled:  {} ({}): {}", c.status, c.reason, c.message);
    }
    match &st.last_analysis {
        Some(a) => {
            let _ = writeln!(
                out,
                "Last analysis ({}, window {}): {:?}",
                ago(now, a.time.0),
                a.window.as_ref().map_or("-", |w| w.0.as_str()),
                a.verdict
            );
            let _ = writeln!(
                out,
                "  {:<20} {:>12} {:>14}  verdict",
                "check", "value", "threshold"
            );
            for c in &a.checks {
                let value = c.value.map_or("no data".into(), |v| format!("{v:.4}"));
                let why = c
                    .reason
                    .as_ref()
                    .map_or(String::new(), |r| format!("  ({r})"));
                let name = match &c.backend {
                    Some(b) => format!("{} [{b}]", c.name),
                    None => c.name.clone(),
                };
                let _ = writeln!(
                    out,
                    "  {name:<20} {value:>12} {:>14}  {:?}{why}",
                    c.threshold, c.verdict
                );
            }
        }
        None => {
            let _ = writeln!(out, "Last analysis: none yet");
        }
    }
    if !st.history.is_empty() {
        let _ = writeln!(out, "History:");
        for h in st.history.iter().rev() {
            let _ = writeln!(
                out,
                "  {}  {} -> {}  {}{}",
                h.finished_at.0.strftime("%Y-%m-%dT%H:%M:%SZ"),
                weights_summary(&h.from),
                weights_summary(&h.to),
                h.outcome.as_str(),
                h.reason
                    .as_ref()
                    .map_or(String::new(), |r| format!(": {r}"))
            );
        }
    }
    out
}
