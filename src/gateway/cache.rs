//! The gateway's view of the cluster: reflector stores fed by watches, one per namespace it
//! serves (or one cluster-wide). Only the snapshot builder reads them; requests read the
//! snapshot.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Resource;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::api::{InferenceBackend, ModelRoute, Tenant};

#[derive(Clone)]
pub struct Caches {
    pub routes: Stores<ModelRoute>,
    pub backends: Stores<InferenceBackend>,
    pub secrets: Stores<Secret>,
    pub slices: Stores<EndpointSlice>,
    pub tenants: Stores<Tenant>,
}

/// One kind's objects over the namespaces served: a store per namespace watched (RBAC may
/// grant no more than those namespaces), read as one.
pub struct Stores<K: Resource<DynamicType = ()> + 'static>(Vec<Store<K>>);

impl<K: Resource<DynamicType = ()> + Clone + 'static> Stores<K> {
    pub fn new(stores: Vec<Store<K>>) -> Self {
        Self(stores)
    }

    /// Every object of every namespace served.
    pub fn state(&self) -> Vec<Arc<K>> {
        match self.0.as_slice() {
            [one] => one.state(),
            all => all.iter().flat_map(|s| s.state()).collect(),
        }
    }

    pub fn get(&self, key: &ObjectRef<K>) -> Option<Arc<K>> {
        self.0.iter().find_map(|s| s.get(key))
    }

    /// Resolves once every store holds its first complete list.
    pub async fn wait_until_ready(
        &self,
    ) -> Result<(), kube::runtime::reflector::store::WriterDropped> {
        for s in &self.0 {
            s.wait_until_ready().await?;
        }
        Ok(())
    }
}

impl<K: Resource<DynamicType = ()> + 'static> Clone for Stores<K> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<K: Resource<DynamicType = ()> + 'static> From<Store<K>> for Stores<K> {
    fn from(store: Store<K>) -> Self {
        Self(vec![store])
    }
}

#[cfg(test)]
mod tests {
    use kube::runtime::reflector;
    use kube::runtime::watcher;
    use serde_json::json;

    use super::*;

    fn route(ns: &str, name: &str) -> ModelRoute {
        serde_json::from_value(json!({"apiVersion": "switchyard.dev/v1alpha1", "kind": "ModelRoute",
            "metadata": {"name": name, "namespace": ns}, "spec": {"backends": [{"name": "b", "weight": 1}]}}))
        .unwrap()
    }

    #[tokio::test]
    async fn the_stores_of_several_namespaces_read_as_one() {
        let mut stores = vec![];
        for ns in ["a", "b"] {
            let (store, mut w) = reflector::store();
            w.apply_watcher_event(&watcher::Event::Init);
            w.apply_watcher_event(&watcher::Event::InitApply(route(ns, "chat")));
            w.apply_watcher_event(&watcher::Event::InitDone);
            stores.push(store);
        }
        let all = Stores::new(stores);
        all.wait_until_ready().await.unwrap();
        let mut names: Vec<_> = all
            .state()
            .iter()
            .map(|r| {
                format!(
                    "{}/{}",
                    r.metadata.namespace.as_deref().unwrap(),
                    r.metadata.name.as_deref().unwrap()
                )
            })
            .collect();
        names.sort();
        assert_eq!(names, ["a/chat", "b/chat"]);
        assert!(all.get(&ObjectRef::new("chat").within("b")).is_some());
        assert!(all.get(&ObjectRef::new("chat").within("c")).is_none());
    }
}
