//! `Tenant`: who may call the gateway. A tenant is a team or an application; its keys are
//! what its callers present (`Authorization: Bearer …` from the OpenAI SDKs, `x-api-key`
//! from Anthropic's), and it names the routes those keys may use. Limits and budgets will
//! hang on it too; the spec keeps room for them.

#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::SecretKeyRef;

/// The label a Secret must carry for its values to be used as tenants' keys.
pub const CREDENTIAL_LABEL: &str = "switchyard.dev/credential";

/// What a Secret labelled [`CREDENTIAL_LABEL`] may be used for; each only for its purpose, so
/// a tenant's key can never be sent to a provider, nor a provider key accepted from a caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CredentialPurpose {
    /// A provider's API key, sent upstream by the gateway (`InferenceBackend` credentials).
    Provider,
    /// A key callers present to the gateway (`Tenant` keys).
    TenantKey,
    /// CA certificates the gateway verifies a backend's certificate with (`tls.caSecretRef`).
    /// Not secret, but read through the same opt-in label, so one selector covers
    /// everything Switchyard reads from Secrets.
    CaBundle,
}

impl CredentialPurpose {
    pub const ALL: [CredentialPurpose; 3] = [
        CredentialPurpose::Provider,
        CredentialPurpose::TenantKey,
        CredentialPurpose::CaBundle,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialPurpose::Provider => "provider",
            CredentialPurpose::TenantKey => "tenant-key",
            CredentialPurpose::CaBundle => "ca-bundle",
        }
    }

    pub fn of_labels(labels: &BTreeMap<String, String>) -> Option<Self> {
        let v = labels.get(CREDENTIAL_LABEL)?;
        Self::ALL.into_iter().find(|p| p.as_str() == v)
    }

    /// The label selector matching every Secret either component may read.
    pub fn selector() -> String {
        let values: Vec<&str> = Self::ALL.iter().map(|p| p.as_str()).collect();
        format!("{CREDENTIAL_LABEL} in ({})", values.join(","))
    }
}

/// A team or application allowed to call the gateway, with its keys and the routes they
/// may use.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "switchyard.dev",
    version = "v1alpha1",
    kind = "Tenant",
    namespaced,
    status = "TenantStatus",
    shortname = "tn",
    category = "switchyard",
    doc = "Tenant is a caller of the gateway: its keys (referenced from Secrets labelled switchyard.dev/credential=tenant-key) and the ModelRoutes of its namespace they may use.",
    printcolumn(
        name = "Keys",
        type_ = "integer",
        json_path = ".status.keys",
        description = "Keys the gateway accepts for this tenant"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Whether every key resolves to a usable Secret"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct TenantSpec {
    /// The keys callers of this tenant present. Each is a key of a Secret in the tenant's
    /// namespace labelled `switchyard.dev/credential: tenant-key`; several allow rotation
    /// (add the new key, move callers, remove the old one; each takes effect in seconds).
    #[schemars(length(min = 1, max = 64))]
    pub keys: Vec<TenantKey>,
    /// The ModelRoutes of the tenant's namespace its keys may use; all of them when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routes: Option<RouteScope>,
}

/// One key of a tenant.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantKey {
    /// The Secret key holding the key callers present.
    pub secret_ref: SecretKeyRef,
}

/// Which routes a tenant may use: those named, and those whose labels match the selector.
/// A route matching either is allowed.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.names) || has(self.selector)").message(
    "set routes.names, routes.selector or both; omit routes to allow every route of the namespace"
))]
pub struct RouteScope {
    /// ModelRoute names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub names: Option<Vec<String>>,
    /// A label selector over ModelRoutes (`matchLabels` only: every label must match).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<MatchLabels>,
}

/// Labels a ModelRoute must carry, all of them.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MatchLabels {
    /// Label keys and values a ModelRoute must all carry.
    pub match_labels: BTreeMap<String, String>,
}

impl RouteScope {
    /// Whether the route `name` with `labels` is in scope.
    pub fn allows(&self, name: &str, labels: &BTreeMap<String, String>) -> bool {
        self.names
            .as_ref()
            .is_some_and(|n| n.iter().any(|n| n == name))
            || self
                .selector
                .as_ref()
                .is_some_and(|s| s.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v)))
    }
}

/// What the controller observed about the tenant.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready (every key resolves to a labelled Secret), following kstatus conventions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Keys that resolve to a value the gateway accepts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<i32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_route_is_in_scope_by_name_or_by_every_selector_label() {
        let scope = RouteScope {
            names: Some(vec!["chat".into()]),
            selector: Some(MatchLabels {
                match_labels: labels(&[("tier", "prod"), ("team", "a")]),
            }),
        };
        assert!(scope.allows("chat", &labels(&[])));
        assert!(scope.allows(
            "other",
            &labels(&[("tier", "prod"), ("team", "a"), ("x", "y")])
        ));
        assert!(!scope.allows("other", &labels(&[("tier", "prod")])));
        assert!(!scope.allows("chatty", &labels(&[])));
    }

    #[test]
    fn each_label_value_means_one_purpose() {
        let of = |v: &str| CredentialPurpose::of_labels(&labels(&[(CREDENTIAL_LABEL, v)]));
        assert_eq!(of("provider"), Some(CredentialPurpose::Provider));
        assert_eq!(of("tenant-key"), Some(CredentialPurpose::TenantKey));
        assert_eq!(of("Provider"), None);
        assert_eq!(CredentialPurpose::of_labels(&labels(&[])), None);
    }
}
