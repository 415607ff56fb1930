//! The gateway's view of the cluster: reflector stores fed by watches, read on every request
//! without ever calling the API server.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::api::{InferenceBackend, ModelRoute};

#[derive(Clone)]
pub struct Caches {
    pub routes: Store<ModelRoute>,
    pub backends: Store<InferenceBackend>,
    pub secrets: Store<Secret>,
    pub slices: Store<EndpointSlice>,
}

impl Caches {
    /// The route serving `model`. When two routes claim one name, the older keeps serving
    /// (the controller reports the conflict on both).
    pub fn route(&self, model: &str) -> Option<Arc<ModelRoute>> {
        crate::api::conflict::serving(self.routes.state(), model)
    }

    /// Model names of routes with a split in effect, sorted.
    pub fn models(&self) -> Vec<(String, i64)> {
        let mut models: Vec<(String, i64)> = self
            .routes
            .state()
            .iter()
            .filter(|r| r.status.as_ref().is_some_and(|s| !s.weights.is_empty()))
            .map(|r| {
                let created = r.creation_timestamp().map_or(0, |t| t.0.as_second());
                (r.spec.model_name(&r.name_any()).to_owned(), created)
            })
            .collect();
        models.sort();
        models.dedup_by(|a, b| a.0 == b.0);
        models
    }

    pub fn backend(&self, namespace: &str, name: &str) -> Option<Arc<InferenceBackend>> {
        self.backends.get(&ObjectRef::new(name).within(namespace))
    }

    /// The value of one key of a Secret, as text.
    pub fn secret_value(&self, namespace: &str, name: &str, key: &str) -> Option<String> {
        let secret = self.secrets.get(&ObjectRef::new(name).within(namespace))?;
        if let Some(v) = secret.data.as_ref().and_then(|d| d.get(key)) {
            return String::from_utf8(v.0.clone())
                .ok()
                .map(|s| s.trim().to_owned());
        }
        secret
            .string_data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|s| s.trim().to_owned())
    }

    /// `IP:port` of the pods of a self-hosted backend the gateway may use now: warmed up
    /// (listed in the backend's status) and ready in an EndpointSlice of its Service.
    pub fn endpoints(&self, ib: &InferenceBackend) -> Vec<String> {
        let Some(status) = ib.status.as_ref() else {
            return vec![];
        };
        let ns = ib.namespace();
        let name = ib.name_any();
        let ready_ips: Vec<String> = self
            .slices
            .state()
            .iter()
            .filter(|s| {
                s.namespace() == ns && s.labels().get("kubernetes.io/service-name") == Some(&name)
            })
            .flat_map(|s| s.endpoints.clone())
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false))
            .flat_map(|e| e.addresses)
            .collect();
        status
            .endpoints
            .iter()
            .filter(|e| {
                let ip = e
                    .address
                    .rsplit_once(':')
                    .map_or(e.address.as_str(), |(ip, _)| ip);
                ready_ips.iter().any(|r| r == ip)
            })
            .map(|e| e.address.clone())
            .collect()
    }
}
