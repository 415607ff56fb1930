//! Which routes use which backends. A backend that a route may send traffic to now (its
//! applied weights, its stable split to roll back to, the mirror, the migration's target, or
//! a fallback tier) must not vanish; and a change to a route re-triggers the backends it
//! names. Pure: fed from the reflector stores, tested without a cluster.

use std::collections::BTreeSet;
use std::sync::Arc;

use kube::ResourceExt;

use super::index::RouteKeys;
use crate::api::{InferenceBackend, ModelRoute};

/// What the route index keeps of `mr`: its model, the backends it names, whether it
/// reports a model conflict.
pub fn index_keys(mr: &ModelRoute) -> RouteKeys {
    RouteKeys {
        model: mr
            .spec
            .model_name(mr.metadata.name.as_deref().unwrap_or_default())
            .to_owned(),
        backends: named_by(mr).into_iter().map(str::to_owned).collect(),
        conflicted: super::conflict::reports(mr),
    }
}

/// Every backend `mr` names, in spec or status: a change to the route may change any of them.
pub fn named_by(mr: &ModelRoute) -> BTreeSet<&str> {
    named(mr).collect()
}

/// Whether `mr` carries traffic to `backend` (membership, without building a set).
pub fn carries(mr: &ModelRoute, backend: &str) -> bool {
    carried(mr).any(|n| n == backend)
}

/// Names of the backends `mr` may send traffic to now, or roll back to (with repeats).
fn carried(mr: &ModelRoute) -> impl Iterator<Item = &str> {
    let fallback = mr.spec.fallback.iter().map(|f| f.name.as_str());
    let status = mr.status.iter().flat_map(|st| {
        let weighted = st.weights.iter().chain(&st.stable).chain(&st.target);
        let mirror = st.mirror.iter().flat_map(|m| m.backends.iter());
        weighted
            .map(|w| w.name.as_str())
            .chain(mirror.map(String::as_str))
    });
    fallback.chain(status)
}

fn named(mr: &ModelRoute) -> impl Iterator<Item = &str> {
    carried(mr).chain(mr.spec.backends.iter().map(|b| b.name.as_str()))
}

/// Names of the routes in `namespace` that hold backend `name` (sorted, for stable messages).
pub fn holders(routes: &[Arc<ModelRoute>], namespace: &str, name: &str) -> Vec<String> {
    let mut held: Vec<String> = routes
        .iter()
        .filter(|mr| mr.metadata.namespace.as_deref() == Some(namespace))
        .filter(|mr| carries(mr, name))
        .map(|mr| mr.name_any())
        .collect();
    held.sort();
    held
}

/// The backends to reconcile when `mr` changes: those it names, and those of its namespace
/// waiting to be deleted (the route may just have let go of one).
pub fn backends_to_recheck(mr: &ModelRoute, backends: &[Arc<InferenceBackend>]) -> Vec<String> {
    let ns = &mr.metadata.namespace;
    let mut names: BTreeSet<String> = named_by(mr).into_iter().map(str::to_owned).collect();
    names.extend(
        backends
            .iter()
            .filter(|ib| &ib.metadata.namespace == ns && ib.metadata.deletion_timestamp.is_some())
            .map(|ib| ib.name_any()),
    );
    names.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(ns: &str, name: &str, yaml: &str) -> Arc<ModelRoute> {
        let mut mr: ModelRoute = serde_yaml::from_str(&format!(
            "apiVersion: switchyard.dev/v1alpha1\nkind: ModelRoute\nmetadata: {{name: {name}, namespace: {ns}}}\n{yaml}"
        ))
        .unwrap();
        mr.metadata.namespace = Some(ns.into());
        Arc::new(mr)
    }

    const MIGRATING: &str = r#"
spec:
  backends: [{name: desired, weight: 1}]
  fallback: [{name: tier2}]
status:
  weights: [{name: old, weight: 950}, {name: new, weight: 50}]
  stable: [{name: old, weight: 1}]
  target: [{name: new, weight: 1}]
  mirror: {percent: 10, backends: [shadow]}
"#;

    #[test]
    fn weights_stable_target_mirror_and_fallback_carry_traffic() {
        let mr = route("a", "chat", MIGRATING);
        let carried: Vec<_> = carried(&mr).collect::<BTreeSet<_>>().into_iter().collect();
        assert_eq!(carried, ["new", "old", "shadow", "tier2"]);
        // Spec alone carries nothing yet: nothing routes to `desired` until status says so.
        assert!(!carries(&mr, "desired"));
        assert!(named_by(&mr).contains("desired"));
    }

    #[test]
    fn holders_are_the_routes_of_the_same_namespace() {
        let routes = vec![
            route("a", "chat", MIGRATING),
            route("a", "embed", "spec: {backends: [{name: old, weight: 1}]}"),
            route("b", "other", MIGRATING),
            route(
                "a",
                "code",
                "spec: {backends: [{name: x, weight: 1}]}\nstatus: {weights: [{name: old, weight: 1}]}",
            ),
        ];
        assert_eq!(holders(&routes, "a", "old"), ["chat", "code"]);
        assert_eq!(holders(&routes, "a", "shadow"), ["chat"]);
        assert!(holders(&routes, "a", "desired").is_empty());
        assert!(holders(&routes, "c", "old").is_empty());
    }

    #[test]
    fn a_route_change_rechecks_deleting_backends_it_no_longer_names() {
        let mr = route("a", "chat", "spec: {backends: [{name: new, weight: 1}]}");
        let mut gone: InferenceBackend = serde_yaml::from_str(
            "apiVersion: switchyard.dev/v1alpha1\nkind: InferenceBackend\nmetadata: {name: old, namespace: a, deletionTimestamp: '2026-01-01T00:00:00Z'}\nspec: {}",
        )
        .unwrap();
        let mut elsewhere = gone.clone();
        elsewhere.metadata.namespace = Some("b".into());
        elsewhere.metadata.name = Some("far".into());
        let mut live = gone.clone();
        live.metadata.deletion_timestamp = None;
        live.metadata.name = Some("live".into());
        gone.metadata.namespace = Some("a".into());
        let backends = vec![Arc::new(gone), Arc::new(elsewhere), Arc::new(live)];
        assert_eq!(backends_to_recheck(&mr, &backends), ["new", "old"]);
    }
}
