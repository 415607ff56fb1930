//! What the watch caches keep of an object.
//!
//! The controller and the gateway cache every route and backend they watch (the gateway also
//! Secrets and EndpointSlices). Server-side apply's `managedFields` and kubectl's
//! `last-applied-configuration` annotation are often the larger part of such an object, and no
//! reader of a cache needs them: writes carry their own field manager and `resourceVersion`.
//! controller-runtime strips managed fields from its caches for the same reason.

use kube::Resource;

/// The annotation in which `kubectl apply` keeps a copy of the whole object it applied.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops the bookkeeping no reader of a cache needs; everything else is kept as it was.
pub fn slim<K: Resource>(obj: &mut K) {
    let meta = obj.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Secret;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;

    #[test]
    fn managed_fields_and_the_last_applied_copy_go_and_nothing_else_does() {
        let mut secret: Secret = serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "openai", "namespace": "team-a", "resourceVersion": "42",
                "labels": {"app": "x"},
                "annotations": {LAST_APPLIED: "{\"kind\":\"Secret\"}", "team": "a"},
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
            },
            "data": {"api-key": "c2stdGVzdA=="},
        }))
        .unwrap();
        assert_eq!(
            secret
                .metadata
                .managed_fields
                .as_deref()
                .map(<[ManagedFieldsEntry]>::len),
            Some(1)
        );
        let before = serde_json::to_value(&secret).unwrap();
        slim(&mut secret);
        assert_eq!(secret.metadata.managed_fields, None);
        let mut expected = before;
        let meta = expected["metadata"].as_object_mut().unwrap();
        meta.remove("managedFields");
        meta["annotations"]
            .as_object_mut()
            .unwrap()
            .remove(LAST_APPLIED);
        assert_eq!(serde_json::to_value(&secret).unwrap(), expected);
    }
}
