//! Two routes of a namespace claiming one model name: both say so. The one the gateway
//! serves (`api::conflict::serving`: the oldest) keeps working and names the other in a
//! `ModelConflict` condition; the other is `Ready=False`/`Stalled=True`, reason
//! `ModelConflict`, naming the route that serves, and does not migrate.
//!
//! Namespaced, as routes reference backends: a gateway that watches several namespaces
//! resolves a name claimed in two of them by the same rule.

use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::conditions::{self, Desired, Reason};
use crate::api::conflict::{model_of, serving};
use crate::api::{ModelRoute, ModelRouteStatus, condition, find_condition};

/// Condition type on the route that keeps serving a contested name.
pub const CONDITION: &str = "ModelConflict";
/// Reason on both routes.
pub const REASON: Reason = Reason::ModelConflict;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No other route of the namespace claims the name.
    Alone,
    /// This route serves the name; these (sorted) claim it too.
    Serves { others: Vec<String> },
    /// That route serves the name instead of this one.
    Shadowed { by: String },
}

/// The model name `mr` claims, borrowed (compared for every candidate of an event).
fn claimed(mr: &ModelRoute) -> &str {
    mr.spec
        .model_name(mr.metadata.name.as_deref().unwrap_or_default())
}

/// The verdict for `me` among `routes` (any namespaces; only `me`'s counts). Callers pass
/// the index's claimants of `me`'s name, not every route.
pub fn verdict(me: &ModelRoute, routes: &[Arc<ModelRoute>]) -> Verdict {
    let model = model_of(me);
    let rivals: Vec<&ModelRoute> = routes
        .iter()
        .map(AsRef::as_ref)
        .filter(|r| r.metadata.namespace == me.metadata.namespace && claimed(r) == model)
        .collect();
    let serving_route = serving(rivals.iter().copied().chain([me]), &model);
    match serving_route {
        Some(s) if s.name_any() != me.name_any() => Verdict::Shadowed { by: s.name_any() },
        _ => {
            let mut others: Vec<String> = rivals
                .iter()
                .map(|r| r.name_any())
                .filter(|n| *n != me.name_any())
                .collect();
            others.sort();
            others.dedup();
            if others.is_empty() {
                Verdict::Alone
            } else {
                Verdict::Serves { others }
            }
        }
    }
}

/// The routes to look at again when `changed` changes: those of its namespace claiming its
/// name, and those reporting a conflict (the name may just have been let go).
pub fn affected(changed: &ModelRoute, routes: &[Arc<ModelRoute>]) -> Vec<Arc<ModelRoute>> {
    let model = claimed(changed);
    routes
        .iter()
        .filter(|r| {
            r.metadata.namespace == changed.metadata.namespace
                && r.metadata.name != changed.metadata.name
        })
        .filter(|r| claimed(r) == model || reports(r))
        .cloned()
        .collect()
}

/// Whether `mr`'s status reports a model conflict (it serves a contested name or is shadowed).
pub fn reports(mr: &ModelRoute) -> bool {
    mr.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.reason == REASON.as_str() && c.status == "True")
    })
}

pub fn serving_message(model: &str, others: &[String]) -> String {
    format!(
        "model {model:?} is also claimed by ModelRoute {}; this route keeps serving it (it is the oldest) and the other does not serve until the conflict is resolved",
        others.join(", ")
    )
}

pub fn shadowed_message(model: &str, by: &str) -> String {
    format!(
        "model {model:?} is served by the older ModelRoute {by}; this route does not serve it: change spec.model or delete one of the two"
    )
}

/// Writes the verdict into a route's status. A shadowed route does not serve: Ready=False
/// and Stalled=True (waiting will not resolve it), never Reconciling.
pub fn mark(
    status: &mut ModelRouteStatus,
    verdict: &Verdict,
    model: &str,
    generation: Option<i64>,
    now: Timestamp,
) {
    match verdict {
        Verdict::Alone => conditions::remove(&mut status.conditions, CONDITION),
        Verdict::Serves { others } => {
            let want = Desired::new(CONDITION, true, REASON, serving_message(model, others));
            conditions::set(&mut status.conditions, want, generation, now);
        }
        Verdict::Shadowed { by } => {
            let message = shadowed_message(model, by);
            for type_ in [condition::READY, condition::STALLED] {
                let want =
                    Desired::new(type_, type_ == condition::STALLED, REASON, message.clone());
                conditions::set(&mut status.conditions, want, generation, now);
            }
            conditions::remove(&mut status.conditions, condition::RECONCILING);
            conditions::remove(&mut status.conditions, CONDITION);
        }
    }
}

/// The message of an Event to publish when the conflict first shows (or changes) in status.
pub fn news(before: &ModelRouteStatus, after: &ModelRouteStatus) -> Option<String> {
    let said = |st: &ModelRouteStatus| {
        [CONDITION, condition::STALLED]
            .into_iter()
            .filter_map(|t| find_condition(&st.conditions, t))
            .find(|c| c.reason == REASON.as_str() && c.status == "True")
            .map(|c| c.message.clone())
    };
    let now = said(after)?;
    (said(before).as_ref() != Some(&now)).then_some(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(ns: &str, name: &str, model: &str, created: &str) -> Arc<ModelRoute> {
        Arc::new(
            serde_yaml::from_str(&format!(
                "apiVersion: switchyard.dev/v1alpha1\nkind: ModelRoute\nmetadata: {{name: {name}, namespace: {ns}, creationTimestamp: '{created}'}}\nspec: {{model: {model}, backends: [{{name: x, weight: 1}}]}}"
            ))
            .unwrap(),
        )
    }

    #[test]
    fn both_routes_know_and_agree_with_the_gateways_rule() {
        let old = route("a", "old", "chat", "2026-01-01T00:00:00Z");
        let new = route("a", "new", "chat", "2026-01-02T00:00:00Z");
        let elsewhere = route("b", "other", "chat", "2025-01-01T00:00:00Z");
        let alone = route("a", "embed", "embed", "2026-01-03T00:00:00Z");
        let all = vec![old.clone(), new.clone(), elsewhere.clone(), alone.clone()];
        assert_eq!(
            verdict(&old, &all),
            Verdict::Serves {
                others: vec!["new".into()]
            }
        );
        assert_eq!(verdict(&new, &all), Verdict::Shadowed { by: "old".into() });
        assert_eq!(verdict(&alone, &all), Verdict::Alone);
        assert_eq!(verdict(&elsewhere, &all), Verdict::Alone);
        // The gateway, watching namespace a, serves the route status says serves.
        let gateway_view: Vec<_> = all
            .iter()
            .filter(|r| r.namespace().as_deref() == Some("a"))
            .cloned()
            .collect();
        let served = serving(gateway_view, "chat").unwrap();
        assert_eq!(served.name_any(), "old");
        // Before the watch has seen the new route, the route itself still counts.
        assert_eq!(
            verdict(&new, std::slice::from_ref(&old)),
            Verdict::Shadowed { by: "old".into() }
        );
    }

    #[test]
    fn the_shadowed_route_is_stalled_and_the_serving_one_names_it() {
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let mut loser = ModelRouteStatus::default();
        let v = Verdict::Shadowed { by: "old".into() };
        mark(&mut loser, &v, "chat", Some(1), now);
        let stalled = find_condition(&loser.conditions, "Stalled").unwrap();
        assert_eq!(
            (stalled.status.as_str(), stalled.reason.as_str()),
            ("True", REASON.as_str())
        );
        assert!(stalled.message.contains("ModelRoute old"));
        let ready = find_condition(&loser.conditions, "Ready").unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", REASON.as_str())
        );
        assert!(news(&ModelRouteStatus::default(), &loser).is_some());
        assert!(
            news(&loser.clone(), &loser).is_none(),
            "no Event for an unchanged conflict"
        );

        let mut winner = ModelRouteStatus::default();
        let v = Verdict::Serves {
            others: vec!["new".into()],
        };
        mark(&mut winner, &v, "chat", Some(1), now);
        let c = find_condition(&winner.conditions, CONDITION).unwrap();
        assert!(c.message.contains("ModelRoute new"), "{}", c.message);
        assert!(find_condition(&winner.conditions, "Stalled").is_none());
        mark(&mut winner, &Verdict::Alone, "chat", Some(1), now);
        assert!(find_condition(&winner.conditions, CONDITION).is_none());
    }

    #[test]
    fn a_change_rechecks_same_name_routes_and_those_in_conflict() {
        let old = route("a", "old", "chat", "2026-01-01T00:00:00Z");
        let renamed = route("a", "new", "chat2", "2026-01-02T00:00:00Z");
        let mut flagged = (*route("a", "x", "other", "2026-01-01T00:00:00Z")).clone();
        flagged.status = Some(
            serde_yaml::from_str(
                "conditions: [{type: ModelConflict, status: 'True', reason: ModelConflict, message: m, lastTransitionTime: '2026-01-01T00:00:00Z'}]",
            )
            .unwrap(),
        );
        let all = vec![old.clone(), renamed.clone(), Arc::new(flagged)];
        let names: Vec<_> = affected(&renamed, &all)
            .iter()
            .map(|r| r.name_any())
            .collect();
        assert_eq!(names, ["x"]);
        let names: Vec<_> = affected(&old, &all).iter().map(|r| r.name_any()).collect();
        assert_eq!(names, ["x"]);
    }
}
