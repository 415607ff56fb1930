//! The `switchyard.dev/v1alpha1` API: the custom resources users apply and the status the
//! controller publishes. Everything checkable at admission is declared here (schema and CEL
//! rules), so the API server rejects bad input with a message that says what to fix.

mod backend;
mod common;
mod route;

pub use backend::*;
pub use common::*;
pub use route::*;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// API group of every Switchyard resource.
pub const GROUP: &str = "switchyard.dev";
/// The only served and stored version.
pub const VERSION: &str = "v1alpha1";

/// Every CRD Switchyard installs, in a stable order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![InferenceBackend::crd(), ModelRoute::crd()]
}

/// Each CRD as `(file name, YAML)`, exactly as checked into `crds/`.
pub fn crd_files() -> Result<Vec<(String, String)>, serde_yaml::Error> {
    crds()
        .iter()
        .map(|crd| {
            let name = crd.metadata.name.clone().unwrap_or_default();
            serde_yaml::to_string(crd).map(|y| (format!("{name}.yaml"), y))
        })
        .collect()
}

/// All CRDs as one multi-document YAML stream, for `kubectl apply -f -`.
pub fn crds_yaml() -> Result<String, serde_yaml::Error> {
    Ok(crd_files()?
        .into_iter()
        .map(|(_, y)| format!("---\n{y}"))
        .collect())
}
