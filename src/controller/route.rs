//! Reconciles `ModelRoute`: resolves its backends and, for a route that has never had a
//! split, puts the desired split into effect at once (there is nothing to migrate from).

use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::instrument;

use super::conditions::{self, Desired};
use super::{Context, Error, FIELD_MANAGER};
use crate::api::{
    InferenceBackend, ModelRoute, ModelRouteSpec, ModelRouteStatus, Phase, WeightedBackend,
    condition,
};

/// `openai=95,llama=5`, the compact form `kubectl get mr` shows.
pub fn weights_summary(weights: &[WeightedBackend]) -> String {
    weights
        .iter()
        .map(|w| format!("{}={}", w.name, w.weight))
        .collect::<Vec<_>>()
        .join(",")
}

/// Two splits are the same when every backend gets the same weight; order does not matter.
pub fn same_split(a: &[WeightedBackend], b: &[WeightedBackend]) -> bool {
    let key = |ws: &[WeightedBackend]| {
        let mut v: Vec<_> = ws
            .iter()
            .filter(|w| w.weight > 0)
            .map(|w| (w.name.clone(), w.weight))
            .collect();
        v.sort();
        v
    };
    key(a) == key(b)
}

/// The next status of a route, given which of its backends do not exist.
pub fn next_status(
    name: &str,
    spec: &ModelRouteSpec,
    current: &ModelRouteStatus,
    missing: &[String],
    generation: Option<i64>,
    now: Timestamp,
) -> ModelRouteStatus {
    let mut status = current.clone();
    status.observed_generation = generation;
    status.model = Some(spec.model_name(name).to_owned());

    if !missing.is_empty() {
        let names = missing
            .iter()
            .map(|m| format!("{m:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        conditions::set(
            &mut status.conditions,
            Desired::new(
                condition::READY,
                false,
                "BackendNotFound",
                format!(
                    "InferenceBackend {names} not found in this namespace; create it or remove it from spec"
                ),
            ),
            generation,
            now,
        );
        return status;
    }

    if status.stable.is_empty() {
        status.stable = spec.backends.clone();
        status.weights = spec.backends.clone();
        status.phase = Some(Phase::Stable);
        status.step = None;
        status.step_summary = None;
        status.step_started_at = None;
    }
    status.weights_summary = Some(weights_summary(&status.weights));

    if same_split(&spec.backends, &status.stable) && same_split(&status.weights, &status.stable) {
        status.phase = Some(Phase::Stable);
        conditions::set(
            &mut status.conditions,
            Desired::new(
                condition::READY,
                true,
                "SplitInEffect",
                "the desired split is fully in effect",
            ),
            generation,
            now,
        );
        conditions::remove(&mut status.conditions, condition::RECONCILING);
    } else {
        conditions::set(
            &mut status.conditions,
            Desired::new(
                condition::READY,
                false,
                "SplitChanged",
                format!(
                    "desired split {} differs from the split in effect {}",
                    weights_summary(&spec.backends),
                    weights_summary(&status.weights)
                ),
            ),
            generation,
            now,
        );
    }
    status
}

#[instrument(skip_all, fields(route = %mr.name_any(), namespace = mr.namespace().unwrap_or_default()))]
pub async fn reconcile(mr: Arc<ModelRoute>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = mr.namespace().ok_or(Error::MissingNamespace)?;
    let backends: Api<InferenceBackend> = Api::namespaced(ctx.client.clone(), &ns);
    let mut missing = vec![];
    for b in mr
        .spec
        .backends
        .iter()
        .map(|b| &b.name)
        .chain(mr.spec.fallback.iter().map(|f| &f.name))
    {
        if backends.get_opt(b).await.map_err(Error::Kube)?.is_none() && !missing.contains(b) {
            missing.push(b.clone());
        }
    }
    let current = mr.status.clone().unwrap_or_default();
    let status = next_status(
        &mr.name_any(),
        &mr.spec,
        &current,
        &missing,
        mr.meta().generation,
        Timestamp::now(),
    );
    if status != current {
        let api: Api<ModelRoute> = Api::namespaced(ctx.client.clone(), &ns);
        let patch = json!({"apiVersion": "switchyard.dev/v1alpha1", "kind": "ModelRoute", "status": status});
        api.patch_status(
            &mr.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(Error::Kube)?;
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> ModelRouteSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn now() -> Timestamp {
        Timestamp::from_second(1_700_000_000).unwrap()
    }

    #[test]
    fn a_new_route_takes_its_split_at_once() {
        let s = spec("backends: [{name: openai, weight: 95}, {name: llama, weight: 5}]");
        let st = next_status(
            "chat",
            &s,
            &ModelRouteStatus::default(),
            &[],
            Some(1),
            now(),
        );
        assert_eq!(st.weights, s.backends);
        assert_eq!(st.stable, s.backends);
        assert_eq!(st.phase, Some(Phase::Stable));
        assert_eq!(st.weights_summary.as_deref(), Some("openai=95,llama=5"));
        assert_eq!(st.model.as_deref(), Some("chat"));
        assert_eq!(
            crate::api::find_condition(&st.conditions, "Ready")
                .unwrap()
                .status,
            "True"
        );
    }

    #[test]
    fn a_missing_backend_is_named_and_nothing_is_applied() {
        let s = spec("backends: [{name: ghost, weight: 1}]");
        let st = next_status(
            "chat",
            &s,
            &ModelRouteStatus::default(),
            &["ghost".into()],
            Some(1),
            now(),
        );
        assert!(st.weights.is_empty());
        let ready = crate::api::find_condition(&st.conditions, "Ready").unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "BackendNotFound")
        );
        assert!(ready.message.contains("\"ghost\""));
    }

    #[test]
    fn a_changed_split_never_jumps_the_applied_weights() {
        let first = spec("backends: [{name: openai, weight: 100}]");
        let st = next_status(
            "chat",
            &first,
            &ModelRouteStatus::default(),
            &[],
            Some(1),
            now(),
        );
        let changed = spec("backends: [{name: llama, weight: 100}]");
        let st2 = next_status("chat", &changed, &st, &[], Some(2), now());
        assert_eq!(st2.weights, first.backends);
        assert_eq!(
            crate::api::find_condition(&st2.conditions, "Ready")
                .unwrap()
                .reason,
            "SplitChanged"
        );
    }
}
