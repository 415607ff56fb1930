//! The `switchyard.dev/in-use` finalizer: a backend that a route still sends traffic to (or
//! would roll back to) is not deleted, and neither is its workload (owned through it), until
//! the last such route lets go. Meanwhile the backend says which routes hold it.

use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::super::{Error, FIELD_MANAGER};
use crate::api::InferenceBackend;

/// Finalizer the controller puts on every InferenceBackend.
pub const IN_USE: &str = "switchyard.dev/in-use";

/// What one reconcile does about the finalizer.
#[derive(Debug, PartialEq, Eq)]
pub enum Guard {
    /// Not yet guarded: add the finalizer.
    Add,
    /// Guarded (or already released during deletion): nothing to do.
    Keep,
    /// Deleted while these routes still use it: keep serving and say so.
    Hold(Vec<String>),
    /// Deleted and no route uses it any more: let deletion proceed.
    Release,
}

/// Decides from the backend and the routes (of its namespace) that use it.
pub fn guard(ib: &InferenceBackend, holders: Vec<String>) -> Guard {
    let guarded = ib.finalizers().iter().any(|f| f == IN_USE);
    match (ib.meta().deletion_timestamp.is_some(), guarded) {
        (false, false) => Guard::Add,
        (true, true) if holders.is_empty() => Guard::Release,
        (true, true) => Guard::Hold(holders),
        (_, _) => Guard::Keep,
    }
}

/// The message of the `InUse` condition and Event.
pub fn in_use_message(holders: &[String]) -> String {
    format!(
        "deletion waits until no route uses this backend: ModelRoute {} still send it traffic or may roll back to it (status.weights, stable, target, mirror or spec.fallback); it keeps serving until then",
        holders.join(", ")
    )
}

/// Adds or removes the finalizer. The patch carries the resourceVersion it was computed
/// from, so it never drops a finalizer another controller added meanwhile (409 → retry).
pub async fn set(
    api: &Api<InferenceBackend>,
    ib: &InferenceBackend,
    present: bool,
) -> Result<InferenceBackend, Error> {
    let mut finalizers: Vec<String> = ib
        .finalizers()
        .iter()
        .filter(|f| *f != IN_USE)
        .cloned()
        .collect();
    if present {
        finalizers.push(IN_USE.to_owned());
    }
    let patch = json!({
        "metadata": {"finalizers": finalizers, "resourceVersion": ib.resource_version()},
    });
    match api
        .patch(
            &ib.name_any(),
            &PatchParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..Default::default()
            },
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(updated) => Ok(updated),
        Err(kube::Error::Api(s)) if s.code == 409 => Err(Error::Conflict(format!(
            "InferenceBackend {}",
            ib.name_any()
        ))),
        Err(e) => Err(Error::Kube(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(finalizers: &[&str], deleting: bool) -> InferenceBackend {
        let mut ib: InferenceBackend = serde_yaml::from_str(
            "apiVersion: switchyard.dev/v1alpha1\nkind: InferenceBackend\nmetadata: {name: old, namespace: a}\nspec: {}",
        )
        .unwrap();
        ib.metadata.finalizers = Some(finalizers.iter().map(|f| f.to_string()).collect());
        if deleting {
            ib.metadata.deletion_timestamp =
                Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    "2026-01-01T00:00:00Z".parse().unwrap(),
                ));
        }
        ib
    }

    #[test]
    fn guarded_until_the_last_route_lets_go() {
        let held = vec!["chat".to_owned()];
        assert_eq!(guard(&backend(&[], false), vec![]), Guard::Add);
        assert_eq!(guard(&backend(&["other"], false), held.clone()), Guard::Add);
        assert_eq!(guard(&backend(&[IN_USE], false), held.clone()), Guard::Keep);
        assert_eq!(
            guard(&backend(&[IN_USE, "other"], true), held.clone()),
            Guard::Hold(held)
        );
        assert_eq!(guard(&backend(&[IN_USE], true), vec![]), Guard::Release);
        // Already released: deletion is someone else's business now.
        assert_eq!(guard(&backend(&["other"], true), vec![]), Guard::Keep);
    }

    #[test]
    fn the_message_names_the_routes() {
        let m = in_use_message(&["chat".into(), "embed".into()]);
        assert!(m.contains("ModelRoute chat, embed"), "{m}");
    }
}
