//! The shadow after a cutover: once a promotion takes all traffic off some backends, the
//! gateway keeps copying a share of requests to them for a while, and the controller compares
//! their answers with the new split's live traffic before saying they can be decommissioned.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Duration;

/// `spec.rollout.postCutoverShadow`: how long, and with which share of requests, the backends
/// a promotion took all traffic from keep receiving copies.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PostCutoverShadow {
    /// Share of requests copied to the old backends, 1 to 100.
    #[x_kube(validation = Rule::new("self >= 1 && self <= 100")
        .message("postCutoverShadow.percent must be between 1 and 100"))]
    pub percent: i32,
    /// How long the old backends are shadowed after the promotion, e.g. `336h` (two weeks).
    pub duration: Duration,
}

/// Where the post-cutover shadow stands, or how it ended.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum PostCutoverPhase {
    /// Copies go to the old backends and are compared with the new split.
    Shadowing,
    /// It ran its whole duration and no analysis found a discrepancy: the old backends can be
    /// decommissioned.
    Matched,
    /// It ran its whole duration and some analyses found the old backends differ from the new
    /// split; `drift` says what.
    Drifted,
    /// It ran its whole duration without an analysis able to judge (too little traffic, no
    /// Prometheus): nothing is known either way.
    Inconclusive,
    /// `spec.backends` changed, so a new migration starts and the shadow stopped early.
    Superseded,
    /// An old backend was deleted (or is being deleted), so the shadow stopped early.
    BackendDeleted,
}

/// `status.postCutover`: the shadow of the latest promotion.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PostCutoverStatus {
    /// Where it stands.
    pub phase: PostCutoverPhase,
    /// The backends the promotion took all traffic from; they receive the copies and are the
    /// side judged.
    pub backends: Vec<String>,
    /// The new stable backends whose live traffic the copies are compared with.
    pub compared_with: Vec<String>,
    /// Share of requests copied.
    pub percent: i32,
    /// When the promotion happened.
    pub started_at: Time,
    /// When the shadow ends.
    pub until: Time,
    /// When it ended, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    /// Analyses that judged the copies (at least one check passed or failed).
    #[serde(default)]
    pub analyses: i32,
    /// Analyses that could not judge (too little traffic, no data).
    #[serde(default)]
    pub inconclusive: i32,
    /// Per check and backend, in how many analyses the old backend differed from the new
    /// split, with the latest values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<DriftCount>,
    /// The latest discrepancies, newest last, bounded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub discrepancies: Vec<Discrepancy>,
    /// What it concluded, or why it stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// How often one check found one old backend different from the new split.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DriftCount {
    /// The check's name, as in `lastAnalysis`.
    pub check: String,
    /// The old backend.
    pub backend: String,
    /// Analyses in which it failed.
    pub count: i32,
    /// The old backend's value in the latest of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// The new split's value in the same window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<f64>,
}

/// One check of one analysis that found an old backend different from the new split.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Discrepancy {
    /// When the analysis ran.
    pub time: Time,
    /// The check's name.
    pub check: String,
    /// The old backend (the side judged).
    pub backend: String,
    /// The old backend's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// The new split's value (the baseline), for checks relative to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<f64>,
    /// The threshold the value missed.
    pub threshold: String,
    /// The check's explanation, when it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
