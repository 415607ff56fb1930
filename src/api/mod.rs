//! The `switchyard.dev/v1alpha1` API: the custom resources users apply and the status the
//! controller publishes. Everything checkable at admission is declared here (schema and CEL
//! rules), so the API server rejects bad input with a message that says what to fix.

mod backend;
mod common;
pub mod conditions;
pub mod conflict;
mod cost;
mod evaluation;
mod post_cutover;
pub mod reason;
pub mod reference;
mod route;
mod tenant;

pub use backend::*;
pub use common::*;
pub use cost::*;
pub use evaluation::*;
pub use post_cutover::*;
pub use route::*;
pub use tenant::*;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// API group of every Switchyard resource.
pub const GROUP: &str = "switchyard.dev";
/// The only served and stored version.
pub const VERSION: &str = "v1alpha1";

/// Every CRD Switchyard installs, in a stable order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    [InferenceBackend::crd(), ModelRoute::crd(), Tenant::crd()]
        .into_iter()
        .map(unwrap_descriptions)
        .collect()
}

/// Doc comments are wrapped at 100 columns; `kubectl explain` re-wraps text itself, so
/// single line breaks become spaces and only paragraph breaks are kept.
fn unwrap_descriptions(crd: CustomResourceDefinition) -> CustomResourceDefinition {
    fn walk(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, child) in map.iter_mut() {
                    match child {
                        serde_json::Value::String(s) if k == "description" => {
                            *s = s
                                .split("\n\n")
                                .map(|para| {
                                    para.split('\n')
                                        .map(str::trim)
                                        .collect::<Vec<_>>()
                                        .join(" ")
                                })
                                .collect::<Vec<_>>()
                                .join("\n\n");
                        }
                        _ => walk(child),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    let mut value = serde_json::to_value(&crd).expect("a CRD serializes to JSON");
    walk(&mut value);
    serde_json::from_value(value).expect("the same CRD deserializes back")
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
