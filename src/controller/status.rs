//! Status writes with optimistic concurrency. Each write carries the `resourceVersion` of
//! the object the decision was made from, so the API server refuses it (409) when the object
//! changed since: a deposed leader's late write, or a decision from a stale cache, cannot
//! overwrite a newer one. The reconcile then runs again from the current object.

use std::collections::HashMap;
use std::sync::Mutex;

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

/// Writes `status` onto `obj`; `Error::Conflict` when `obj` is no longer current. Returns
/// whether the object changed (a write the server found to change nothing keeps the version,
/// and no watch event follows it).
pub async fn write<K>(api: &Api<K>, obj: &K, status: &impl Serialize) -> Result<bool, Error>
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
        Ok(written) => Ok(written.resource_version() != obj.resource_version()),
        Err(kube::Error::Api(s)) if s.code == 409 => {
            Err(Error::Conflict(format!("{} {name}", K::kind(&()))))
        }
        Err(e) => Err(Error::Kube(e)),
    }
}

/// The versions this controller wrote over, per object, until its watch cache has moved
/// past them. A reconcile triggered by some other event (a backend turning Ready, a pod)
/// before the object's own write has come back through the watch would decide from the
/// version already written over, and its write could only fail with 409 and run again:
/// while settling that was most of the optimistic-write conflicts. Such a reconcile is
/// skipped instead; the write's own watch event reconciles the object again, from fresh state.
#[derive(Debug, Default)]
pub struct Written {
    from: Mutex<HashMap<String, Vec<String>>>,
}

impl Written {
    /// A write to object `key`, made from its version `from`, succeeded.
    pub fn record(&self, key: &str, from: Option<&str>) {
        let Some(from) = from else { return };
        let mut map = self.from.lock().expect("written versions lock");
        let versions = map.entry(key.to_owned()).or_default();
        if !versions.iter().any(|v| v == from) {
            versions.push(from.to_owned());
        }
    }

    /// Whether `key` at `version` is one this controller has already written over. Seeing
    /// any other version means the cache has caught up: the record is dropped.
    pub fn superseded(&self, key: &str, version: Option<&str>) -> bool {
        let mut map = self.from.lock().expect("written versions lock");
        match (map.get(key), version) {
            (Some(versions), Some(v)) if versions.iter().any(|w| w == v) => true,
            (Some(_), _) => {
                map.remove(key);
                false
            }
            (None, _) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_already_written_over_is_superseded_until_the_cache_catches_up() {
        let w = Written::default();
        assert!(!w.superseded("mr/a/chat", Some("1")), "nothing written yet");
        // The finalizer patch from version 1, then the status write from its result, 2.
        w.record("mr/a/chat", Some("1"));
        w.record("mr/a/chat", Some("2"));
        assert!(w.superseded("mr/a/chat", Some("1")));
        assert!(w.superseded("mr/a/chat", Some("2")));
        assert!(!w.superseded("mr/a/other", Some("2")), "per object");
        // The status write's own event (version 3) arrives: decide from it, and forget.
        assert!(!w.superseded("mr/a/chat", Some("3")));
        assert!(!w.superseded("mr/a/chat", Some("2")), "record dropped");
        assert!(w.from.lock().unwrap().is_empty());
    }
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
