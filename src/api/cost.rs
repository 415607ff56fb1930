//! `ModelRoute.status.cost`: what the two sides of a migration cost over the analysis window.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Duration;

/// The cost of the stable backends against the backends gaining traffic (or, after cutover,
/// the old backends kept in shadow), from the gateway's metrics over one window. Amounts are
/// in the currency of the backends' `pricing`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CostComparison {
    /// The instant the window ends.
    pub time: Time,
    /// The range measured, ending at `time`.
    pub window: Duration,
    /// The backends traffic moves from.
    pub stable: CostSide,
    /// The backends traffic moves to.
    pub candidate: CostSide,
}

/// One side of a cost comparison.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CostSide {
    /// The backends measured together.
    pub backends: Vec<String>,
    /// Successful requests in the window (live answers and 2xx shadow copies).
    pub requests: f64,
    /// Tokens in the window: input (cached input included) and output.
    pub tokens: f64,
    /// Cost of those tokens; absent when none of the backends has `pricing`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<f64>,
    /// Cost per 1,000 successful requests; absent without requests or cost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per1k_requests: Option<f64>,
    /// Cost per million tokens; absent without tokens or cost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_million_tokens: Option<f64>,
}
