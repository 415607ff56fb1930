//! Types shared by both resources: Secret references, durations and kstatus conditions.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use crate::duration::{self, DurationError};

/// A key in a Secret in the resource's namespace. Credentials are only ever referenced this
/// way, so an API key never sits in a manifest, in Git, or in the resource's status.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret, in the same namespace as the resource that references it.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Key within the Secret whose value is used.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

/// A reference to credentials kept in a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Credentials {
    /// The Secret key holding the API key. Literal keys are not accepted anywhere in the API.
    pub secret_ref: SecretKeyRef,
}

/// A positive duration written as one or more `<integer><unit>` pairs, units `ms`, `s`, `m`
/// or `h` (for example `30s`, `10m`, `1h30m`). Checked at admission and parsed by
/// [`duration::parse`] with the same grammar, so what the API server accepts always parses.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(transparent)]
pub struct Duration(pub String);

impl Duration {
    pub fn parse(&self) -> Result<std::time::Duration, DurationError> {
        duration::parse(&self.0)
    }
}

impl From<&str> for Duration {
    fn from(s: &str) -> Self {
        Duration(s.to_owned())
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "maxLength": 32,
            "x-kubernetes-validations": [
                {
                    "rule": format!("self.matches('{}')", duration::PATTERN),
                    "message": "must be a duration such as 30s, 10m or 1h30m (units: ms, s, m, h)"
                },
                {
                    "rule": format!("!self.matches('{}') || self.matches('[1-9]')", duration::PATTERN),
                    "message": "must be greater than zero"
                }
            ]
        })
    }
}

/// kstatus condition types published on both resources.
pub mod condition {
    /// The resource is fully reconciled and usable (for a route: its desired split is in effect).
    pub const READY: &str = "Ready";
    /// The controller is working towards the desired state (a rollout, pods starting).
    pub const RECONCILING: &str = "Reconciling";
    /// Progress stopped and needs attention (pods cannot be scheduled, a rollback happened).
    pub const STALLED: &str = "Stalled";
}

/// Finds a condition by type.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}
