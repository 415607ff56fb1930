//! The gateway's view of the cluster: reflector stores fed by watches. Only the snapshot
//! builder reads them; requests read the snapshot.

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::Store;

use crate::api::{InferenceBackend, ModelRoute, Tenant};

#[derive(Clone)]
pub struct Caches {
    pub routes: Store<ModelRoute>,
    pub backends: Store<InferenceBackend>,
    pub secrets: Store<Secret>,
    pub slices: Store<EndpointSlice>,
    pub tenants: Store<Tenant>,
}
