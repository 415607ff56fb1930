//! The quality gate of a migration: an evaluation set (cases in a ConfigMap) replayed against
//! the stable and the new backends through the gateway, and its results in status.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An evaluation set replayed against the stable and the new backends before step 1 (and,
/// with `everyStep`, before each further step). The migration moves on only when every new
/// backend passes at least `minRelativePassRate` of the share of cases the stable backends
/// pass. Requests go through the gateway, pinned to one backend and authenticated as the
/// controller's ServiceAccount, so the controller never holds provider keys; the gateway
/// labels them `outcome="eval"` and tenant `switchyard:eval`, never counted as live traffic.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EvaluationGate {
    /// The ConfigMap, in the route's namespace, holding the cases as a YAML list.
    pub config_map_ref: ConfigMapKeyRef,
    /// Lowest tolerated pass rate of a new backend, as a share of the stable backends' (0.9:
    /// the new backend passes at least 90% as many cases).
    #[serde(default = "default_min_relative_pass_rate")]
    #[x_kube(validation = Rule::new("self > 0.0 && self <= 1.0").message(
        "minRelativePassRate is a share of the stable backends' pass rate in (0, 1], e.g. 0.9"
    ))]
    pub min_relative_pass_rate: f64,
    /// Replay the set before every step, not only before step 1.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub every_step: bool,
}

fn default_min_relative_pass_rate() -> f64 {
    0.9
}

/// A key of a ConfigMap in the route's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapKeyRef {
    /// The ConfigMap's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The key whose value is the list of cases.
    #[serde(default = "default_cases_key")]
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

fn default_cases_key() -> String {
    "cases.yaml".into()
}

/// The outcome of replaying an evaluation set.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, PartialOrd, Ord,
)]
pub enum EvaluationVerdict {
    /// Every new backend passed enough cases.
    Pass,
    /// The set could not be replayed (missing ConfigMap, invalid cases, gateway unreachable);
    /// the step holds, and `progressDeadline` ends a migration that stays so.
    Error,
    /// A new backend passed too few cases: the migration rolls back.
    Fail,
}

/// The latest replay of the route's evaluation set.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EvaluationStatus {
    /// When the replay ended.
    pub time: Time,
    /// The step the replay judged (0: before step 1).
    pub step: i32,
    /// Pass, Fail (the migration rolls back) or Error (it could not run; the step holds).
    pub verdict: EvaluationVerdict,
    /// Why, in a sentence: pass rates against the required share, or what went wrong.
    pub message: String,
    /// Each backend's results, stable backends first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<EvaluationBackend>,
    /// Failing cases of the new backends (then of the stable ones), at most ten.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failing: Vec<EvaluationFailure>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EvaluationBackend {
    /// The InferenceBackend the cases were pinned to.
    pub backend: String,
    /// Whether the backend is one of the stable split's (the baseline).
    pub stable: bool,
    /// Cases whose answer met the expectation.
    pub passed: u32,
    /// Cases replayed.
    pub total: u32,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EvaluationFailure {
    /// The backend that answered.
    pub backend: String,
    /// The case's name in the set.
    pub case: String,
    /// What the answer did wrong, e.g. `not JSON: expected value at line 1 column 1`.
    pub reason: String,
}
