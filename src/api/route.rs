//! `ModelRoute`: a model name apps call, split by weight across backends, and how a change of
//! that split is rolled out.

// kube's `printcolumn(...)` repeats `type_ = ...` once per column, which clippy mistakes
// for a duplicated attribute.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Duration;

/// The model name applications send, the desired split of its traffic across
/// InferenceBackends, how a change of that split is rolled out, and where to fail over.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "switchyard.dev",
    version = "v1alpha1",
    kind = "ModelRoute",
    namespaced,
    status = "ModelRouteStatus",
    shortname = "mr",
    category = "switchyard",
    doc = "ModelRoute is a model name applications call, split by weight across InferenceBackends. Changing the split starts a staged migration judged by Prometheus.",
    printcolumn(
        name = "Model",
        type_ = "string",
        json_path = ".status.model",
        description = "Model name clients send"
    ),
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Stable, Mirroring, Progressing, Holding, Paused or RolledBack"
    ),
    printcolumn(
        name = "Weights",
        type_ = "string",
        json_path = ".status.weightsSummary",
        description = "Split the gateway applies now"
    ),
    printcolumn(
        name = "Step",
        type_ = "string",
        json_path = ".status.stepSummary",
        description = "Current rollout step and its share of the desired split"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        priority = 1,
        description = "Whether the desired split is fully in effect"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ModelRouteSpec {
    /// The model name clients send in requests. Defaults to the route's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub model: Option<String>,
    /// The desired split: InferenceBackends in this namespace and their relative weights.
    #[schemars(length(min = 1, max = 16))]
    #[x_kube(
        validation = Rule::new("self.exists(b, b.weight > 0)")
            .message("at least one backend needs a positive weight"),
        validation = Rule::new("self.all(b, self.exists_one(c, c.name == b.name))")
            .message("backend names must be unique within a route; merge duplicate entries into one weight"),
    )]
    pub backends: Vec<WeightedBackend>,
    /// How a change of `backends` is rolled out. Defaults to steps 5, 20, 50, 100 with
    /// 10-minute steps and the built-in error-rate check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
    /// Ordered fallback tiers, tried in turn on a connect error, timeout, 429 or 5xx.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    #[x_kube(validation = Rule::new("self.all(b, self.exists_one(c, c.name == b.name))")
        .message("fallback backend names must be unique; list each tier once"))]
    pub fallback: Vec<BackendRef>,
}

impl ModelRouteSpec {
    /// The model name clients send: `spec.model`, else the route's name.
    pub fn model_name<'a>(&'a self, route_name: &'a str) -> &'a str {
        self.model.as_deref().unwrap_or(route_name)
    }
}

/// A backend and its relative weight.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct WeightedBackend {
    /// Name of an InferenceBackend in the route's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Relative share of traffic, a non-negative integer; weights are normalised over the
    /// sum, and 0 drains a backend.
    #[x_kube(validation = Rule::new("self >= 0 && self <= 1000000").message(
        "weight must be a whole number between 0 and 1000000 (weights are relative; 0 drains the backend)"
    ))]
    pub weight: i32,
}

/// A reference to an InferenceBackend in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackendRef {
    /// Name of an InferenceBackend in the route's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// How traffic moves from the current split to the desired one.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Rollout {
    /// Percent of the way from the stable split to the desired split at each step. Strictly
    /// increasing, each in 1..=100, ending at 100.
    #[serde(default = "default_steps")]
    #[schemars(length(min = 1, max = 20))]
    #[x_kube(
        validation = Rule::new("self.all(s, s >= 1 && s <= 100)")
            .message("each step is a percentage between 1 and 100"),
        validation = Rule::new("self.isSorted() && self.all(s, self.exists_one(t, t == s))")
            .message("steps must strictly increase, e.g. [5, 20, 50, 100]"),
        validation = Rule::new("self.size() == 0 || self[self.size() - 1] == 100")
            .message("the last step must be 100, so the migration ends with the desired split fully applied"),
    )]
    pub steps: Vec<i32>,
    /// Minimum time spent at each step before the next, e.g. `10m`.
    #[serde(default = "default_step_duration")]
    pub step_duration: Duration,
    /// How each step is judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<Analysis>,
    /// A shadow phase before any live weight moves: the gateway copies this share of
    /// requests to the new backends and discards their answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<Mirror>,
    /// A quality gate: an evaluation set replayed against the stable and the new backends
    /// before step 1 (and optionally before each step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation: Option<super::EvaluationGate>,
    /// After a promotion that takes all traffic off some backends, keep copying a share of
    /// requests to them for a while and compare their answers with the new split; the result
    /// says whether they can be decommissioned. Nothing is rolled back: the cutover is done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_cutover_shadow: Option<super::PostCutoverShadow>,
    /// Longest a step (or the wait for the new backends to become Ready) may last beyond its
    /// `stepDuration` without advancing; then the migration ends and rolls back, with the
    /// reason in status. Time spent paused does not count.
    #[serde(default = "default_progress_deadline")]
    pub progress_deadline: Duration,
}

impl Default for Rollout {
    fn default() -> Self {
        Self {
            steps: default_steps(),
            step_duration: default_step_duration(),
            analysis: None,
            mirror: None,
            evaluation: None,
            post_cutover_shadow: None,
            progress_deadline: default_progress_deadline(),
        }
    }
}

fn default_progress_deadline() -> Duration {
    Duration::from("30m")
}

fn default_steps() -> Vec<i32> {
    vec![5, 20, 50, 100]
}

fn default_step_duration() -> Duration {
    Duration::from("10m")
}

/// How a rollout step is judged from Prometheus.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Analysis {
    /// How often the checks run.
    #[serde(default = "default_interval")]
    pub interval: Duration,
    /// The range each query looks back over (`rate(...[window])`). Default and minimum: four
    /// times Prometheus' scrape interval (read from its configuration API, or the
    /// controller's `--scrape-interval`), so every window holds several samples; a shorter
    /// window makes the checks inconclusive with a message saying the smallest usable one.
    /// A step advances only on a passing analysis whose whole window lies within the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Duration>,
    /// Fewer requests than this to the backends gaining traffic within one interval makes a
    /// check inconclusive, never a pass.
    #[serde(default = "default_min_requests")]
    #[schemars(range(min = 0))]
    pub min_requests: i32,
    /// Highest tolerated share of failed requests on the backends gaining traffic, in [0, 1].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0.0 && self <= 1.0").message(
        "maxErrorRate is a fraction between 0 and 1, e.g. 0.005 for 0.5%"
    ))]
    pub max_error_rate: Option<f64>,
    /// Highest tolerated 95th-percentile request latency on the backends gaining traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_latency_p95: Option<Duration>,
    /// Checks that judge the backends gaining traffic against the stable backends measured
    /// in the same window (as Kayenta does), so a regression is caught relative to what the
    /// route gets today rather than against a fixed number. Each has an absolute floor, so the
    /// resolution of a histogram cannot decide alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relative: Option<RelativeChecks>,
    /// Extra PromQL checks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[x_kube(validation = Rule::new("self.all(m, self.exists_one(n, n.name == m.name))")
        .message("metric check names must be unique"))]
    pub metrics: Vec<MetricCheck>,
    /// Failed checks tolerated at one step; one more rolls the migration back.
    #[serde(default = "default_failure_limit")]
    #[schemars(range(min = 0, max = 100))]
    pub failure_limit: i32,
    /// What an inconclusive verdict (too little traffic, no data, Prometheus unreachable)
    /// does: `Hold` stays at the current step, `Rollback` rolls back.
    #[serde(default)]
    pub on_inconclusive: InconclusivePolicy,
    /// Longest a step may hold on inconclusive verdicts before the migration rolls back.
    #[serde(default = "default_max_hold")]
    pub max_hold: Duration,
    /// Prometheus to query instead of the one the controller is configured with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new(
        "isURL(self) && url(self).getScheme() in ['http', 'https'] && url(self).getHostname() != ''"
    ).message("prometheusUrl must be an http:// or https:// URL, e.g. http://prometheus.monitoring:9090"))]
    pub prometheus_url: Option<String>,
}

impl Default for Analysis {
    fn default() -> Self {
        Self {
            interval: default_interval(),
            window: None,
            min_requests: default_min_requests(),
            max_error_rate: None,
            max_latency_p95: None,
            relative: None,
            metrics: vec![],
            failure_limit: default_failure_limit(),
            on_inconclusive: InconclusivePolicy::default(),
            max_hold: default_max_hold(),
            prometheus_url: None,
        }
    }
}

fn default_interval() -> Duration {
    Duration::from("1m")
}

fn default_min_requests() -> i32 {
    50
}

fn default_failure_limit() -> i32 {
    1
}

fn default_max_hold() -> Duration {
    Duration::from("30m")
}

/// Checks relative to the stable backends. A check fails when the gaining backend's value
/// exceeds the stable one's by more than `maxIncrease` of it *and* by more than `floor`:
/// the limit is `stable + max(stable × maxIncrease, floor)`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RelativeChecks {
    /// Share of failed requests (`error-rate-vs-stable`); `floor` is a fraction of requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<RelativeRate>,
    /// 95th-percentile request duration of successful requests (`latency-p95-vs-stable`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_p95: Option<RelativeLatency>,
    /// 95th-percentile time to first token of streamed answers (`ttft-p95-vs-stable`), e.g.
    /// `{maxIncrease: 0.015, floor: 50ms}` for the usual 1.5% tolerance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_p95: Option<RelativeLatency>,
    /// Output tokens per successful request (`output-tokens-vs-stable`), in either
    /// direction: answers much shorter or longer than today's mean the prompts need work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<RelativeTokens>,
}

/// A rate compared with the stable backends'.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RelativeRate {
    /// Largest tolerated increase over the stable value, as a fraction of it (0.5: 50% more).
    #[x_kube(validation = Rule::new("self >= 0.0 && self <= 100.0").message(
        "maxIncrease is a fraction of the stable value between 0 and 100, e.g. 0.5 for 50% more"
    ))]
    pub max_increase: f64,
    /// An increase up to this many percentage points (as a fraction) always passes. Default
    /// 0.005 (half a percent of requests).
    #[serde(default = "default_rate_floor")]
    #[x_kube(validation = Rule::new("self >= 0.0 && self <= 1.0").message(
        "floor is a fraction of requests between 0 and 1, e.g. 0.005"
    ))]
    pub floor: f64,
}

/// A latency percentile compared with the stable backends'.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RelativeLatency {
    /// Largest tolerated increase over the stable value, as a fraction of it (0.015: 1.5%).
    #[x_kube(validation = Rule::new("self >= 0.0 && self <= 100.0").message(
        "maxIncrease is a fraction of the stable value between 0 and 100, e.g. 0.015 for 1.5%"
    ))]
    pub max_increase: f64,
    /// An increase up to this always passes, so the width of a histogram bucket cannot decide
    /// alone. Default 50ms.
    #[serde(default = "default_latency_floor")]
    pub floor: Duration,
}

/// Output tokens per request compared with the stable backends'.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RelativeTokens {
    /// Largest tolerated difference either way, as a fraction of the stable value (0.05: 5%).
    #[x_kube(validation = Rule::new("self >= 0.0 && self <= 100.0").message(
        "maxDifference is a fraction of the stable value, e.g. 0.05 for 5%"
    ))]
    pub max_difference: f64,
    /// A difference up to this many tokens per request always passes. Default 2.
    #[serde(default = "default_token_floor")]
    #[x_kube(validation = Rule::new("self >= 0.0").message("floor is a number of tokens, 0 or more"))]
    pub floor: f64,
}

fn default_rate_floor() -> f64 {
    0.005
}

fn default_latency_floor() -> Duration {
    Duration::from("50ms")
}

fn default_token_floor() -> f64 {
    2.0
}

/// What an inconclusive analysis does.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum InconclusivePolicy {
    /// Stay at the current step and keep measuring, up to `maxHold`.
    #[default]
    Hold,
    /// Roll back at once.
    Rollback,
}

/// A custom PromQL check. The query may use `{{namespace}}`, `{{route}}`, `{{backend}}` and
/// `{{interval}}`; it must return one number, compared with `min` and/or `max`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.min) || has(self.max)")
        .message("a metric check needs a min or a max threshold"),
    validation = Rule::new("!has(self.min) || !has(self.max) || self.min <= self.max")
        .message("min must not be greater than max"),
)]
pub struct MetricCheck {
    /// Name of the check, shown in status and Events.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-zA-Z0-9]([-_a-zA-Z0-9]*[a-zA-Z0-9])?$")
    )]
    pub name: String,
    /// PromQL returning a single value.
    #[schemars(length(min = 1, max = 4096))]
    pub query: String,
    /// The check fails when the value is below this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// The check fails when the value is above this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

/// The shadow phase.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Mirror {
    /// Share of requests copied to the new backends, 1 to 100.
    #[x_kube(validation = Rule::new("self >= 1 && self <= 100")
        .message("mirror.percent must be between 1 and 100"))]
    pub percent: i32,
    /// How long mirroring lasts before live weights start to move.
    pub duration: Duration,
}

/// Where a route's rollout stands.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Phase {
    /// The desired split is fully in effect.
    Stable,
    /// Copying traffic to the new backends before moving live weight.
    Mirroring,
    /// Moving through the rollout steps.
    Progressing,
    /// Staying at a step because analysis is inconclusive or a target is not ready.
    Holding,
    /// Paused by an operator.
    Paused,
    /// Rolled back to the stable split; waits for a new spec or a retry.
    RolledBack,
}

/// What the controller decided; the gateway applies `weights`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelRouteStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Reconciling and Stalled, following kstatus conventions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The model name this route serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Where the rollout stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// The last fully promoted split; a rollback returns here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stable: Vec<WeightedBackend>,
    /// The split the gateway applies now, in thousandths that sum to 1000 in every phase.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weights: Vec<WeightedBackend>,
    /// `weights` as `name=weight` pairs, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights_summary: Option<String>,
    /// Index (1-based) into `spec.rollout.steps` of the current step; absent when stable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<i32>,
    /// The current step for `kubectl get`, e.g. `2/4 (20%)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_summary: Option<String>,
    /// When the current step began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_started_at: Option<Time>,
    /// The latest analysis and each check's value against its threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_analysis: Option<AnalysisResult>,
    /// Past migrations, newest last, bounded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<MigrationRecord>,
    /// Shadow traffic the gateway sends now, during a rollout's mirror phase or the shadow
    /// after a cutover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<MirrorStatus>,
    /// The split being migrated to (a snapshot of `spec.backends` when the migration began).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target: Vec<WeightedBackend>,
    /// When the current migration began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration_started_at: Option<Time>,
    /// The rollout settings of the running migration, fixed when it started (defaults filled
    /// in). Edits of `spec.rollout` during a migration take effect with the next one, so an
    /// edit can never move weights by more than one step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
    /// Failed analyses at the current step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failures: Option<i32>,
    /// Since when the current step has been held on inconclusive analyses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holding_since: Option<Time>,
    /// Since when a backend gaining traffic in the current migration has not been Ready; the
    /// step holds, and the migration rolls back when it stays so for two analysis intervals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_not_ready_since: Option<Time>,
    /// Whether an operator paused the migration.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
    /// The split last rolled back; it is not tried again until `spec` changes or a retry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rolled_back: Vec<WeightedBackend>,
    /// Id of the last imperative command (annotation `switchyard.dev/command-id`) handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_command: Option<String>,
    /// What the last command did, or why it was ignored (e.g. `promote ignored: no
    /// migration is in progress`); `kubectl switchyard` prints it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_command_result: Option<String>,
    /// What the stable backends and the backends gaining traffic cost over the latest
    /// analysis window, per 1,000 requests and per million tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<super::CostComparison>,
    /// The latest replay of `rollout.evaluation`'s set in the running migration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation: Option<super::EvaluationStatus>,
    /// The shadow of the old backends after the latest promotion, when the rollout asks for
    /// one: where it stands, what it found, and how it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_cutover: Option<super::PostCutoverStatus>,
}

/// What the gateway mirrors: a share of requests copied to the listed backends, whose
/// answers are recorded as shadow traffic and discarded.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MirrorStatus {
    /// Percent of requests copied, 1 to 100.
    pub percent: i32,
    /// Backends that receive the copies.
    pub backends: Vec<String>,
}

/// One analysis run.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisResult {
    /// The instant every query was evaluated at.
    pub time: Time,
    /// The range the queries looked back over, ending at `time`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Duration>,
    /// Overall verdict: the worst of the checks.
    pub verdict: Verdict,
    /// Each check.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckResult>,
}

/// One check's outcome.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckResult {
    /// Name of the check (`error-rate`, `latency-p95`, or a custom check's name).
    pub name: String,
    /// The backend this check judged, when it judges one; each backend gaining traffic is
    /// judged on its own so a good one cannot dilute a bad one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// Measured value, absent when there was none (no data, NaN, unreachable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// For a check relative to the stable backends, their value in the same window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<f64>,
    /// The threshold, as written, e.g. `<= 0.005`.
    pub threshold: String,
    /// Pass, Fail or Inconclusive.
    pub verdict: Verdict,
    /// Why the check was inconclusive or failed, when it says more than the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A check's verdict.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
pub enum Verdict {
    Pass,
    Inconclusive,
    Fail,
}

/// How a migration ended.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum MigrationOutcome {
    /// Every step passed (or an operator promoted): the target is the stable split.
    Promoted,
    /// Analysis failed, stayed inconclusive too long, or a target stopped being usable.
    RolledBack,
    /// An operator aborted it.
    Aborted,
    /// `spec.backends` changed mid-way; a new migration started from the stable split.
    Superseded,
    /// It could not advance within `rollout.progressDeadline`.
    ProgressDeadlineExceeded,
}

impl MigrationOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            MigrationOutcome::Promoted => "Promoted",
            MigrationOutcome::RolledBack => "RolledBack",
            MigrationOutcome::Aborted => "Aborted",
            MigrationOutcome::Superseded => "Superseded",
            MigrationOutcome::ProgressDeadlineExceeded => "ProgressDeadlineExceeded",
        }
    }
}

/// One finished migration.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationRecord {
    /// The stable split the migration started from.
    pub from: Vec<WeightedBackend>,
    /// The desired split it moved towards.
    pub to: Vec<WeightedBackend>,
    /// How it ended.
    pub outcome: MigrationOutcome,
    /// When it started.
    pub started_at: Time,
    /// When it ended.
    pub finished_at: Time,
    /// Why it ended this way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For a promotion with a post-cutover shadow: how the shadow ended and what it found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_cutover: Option<String>,
}
