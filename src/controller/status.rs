//! Status writes with optimistic concurrency. Each write carries the `resourceVersion` of
//! the object the decision was made from, so the API server refuses it (409) when the object
//! changed since: a deposed leader's late write, or a decision from a stale cache, cannot
//! overwrite a newer one. The reconcile then runs again from the current object.

use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{Error, FIELD_MANAGER};

/// The server-side apply body that sets `status` on `obj`, conditional on its version.
pub fn patch<K: Resource<DynamicType = ()>>(obj: &K, status: &impl Serialize) -> Value {
    json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": {"resourceVersion": obj.resource_version()},
        "status": status,
    })
}

/// Writes `status` onto `obj`; `Error::Conflict` when `obj` is no longer current.
pub async fn write<K>(api: &Api<K>, obj: &K, status: &impl Serialize) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let name = obj.name_any();
    match api
        .patch_status(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch(obj, status)),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => {
            Err(Error::Conflict(format!("{} {name}", K::kind(&()))))
        }
        Err(e) => Err(Error::Kube(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ModelRoute, ModelRouteStatus};

    #[test]
    fn the_write_is_conditional_on_the_version_the_decision_was_made_from() {
        let mut mr: ModelRoute = serde_yaml::from_str(
            "apiVersion: switchyard.dev/v1alpha1\nkind: ModelRoute\nmetadata: {name: chat, namespace: a, resourceVersion: '4711'}\nspec: {backends: [{name: x, weight: 1}]}",
        )
        .unwrap();
        let p = patch(&mr, &ModelRouteStatus::default());
        assert_eq!(p["metadata"]["resourceVersion"], "4711");
        assert_eq!(p["kind"], "ModelRoute");
        assert_eq!(p["apiVersion"], "switchyard.dev/v1alpha1");
        mr.metadata.resource_version = Some("4712".into());
        assert_eq!(
            patch(&mr, &ModelRouteStatus::default())["metadata"]["resourceVersion"],
            "4712"
        );
    }
}
