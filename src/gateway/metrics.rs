//! What the gateway exports, per attempt. The controller's analysis queries these, so names
//! and labels are an API. Labels are fixed categories: never a request id or error text.

mod handles;

use prometheus::{
    CounterVec, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

pub use handles::{AttemptMetrics, BackendMetrics, InFlightGauge};

pub struct Metrics {
    pub(super) requests: IntCounterVec,
    pub(super) duration: HistogramVec,
    ttft: HistogramVec,
    pub(super) tokens: IntCounterVec,
    pub(super) cost: CounterVec,
    failovers: IntCounterVec,
    pub(super) in_flight: IntGaugeVec,
    pub(super) overhead: HistogramVec,
    ejections: IntCounterVec,
    ejected: IntGaugeVec,
    pub(super) structured: IntCounterVec,
    /// The routing snapshot in use, and how long building one takes.
    pub config_generation: IntGauge,
    pub config_rebuild: Histogram,
}

/// Outcome of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// Failed, and the request went on to another tier.
    Failover,
    /// Failed, and the client got the error.
    Error,
    /// The backend could not take the request now (`code` says why); nothing was sent.
    Unavailable,
    /// The caller's mistake (the provider's 400/413/422, or a request the backend's dialect
    /// cannot express): not the backend's failure, so not in its error rate.
    ClientError,
    /// A mirrored copy (its `code` says whether it succeeded).
    Shadow,
    /// A replay of an evaluation set by the controller (its `code` says how it went): never
    /// live traffic, so never in the analysis.
    Eval,
}

impl Outcome {
    const ALL: [Outcome; 7] = [
        Outcome::Success,
        Outcome::Failover,
        Outcome::Error,
        Outcome::Unavailable,
        Outcome::ClientError,
        Outcome::Shadow,
        Outcome::Eval,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failover => "failover",
            Outcome::Error => "error",
            Outcome::Unavailable => "unavailable",
            Outcome::ClientError => "client_error",
            Outcome::Shadow => "shadow",
            Outcome::Eval => "eval",
        }
    }
}

/// How an answer to a request that asked for JSON (mode or schema) fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Structured {
    Valid,
    /// The answer's text does not parse as JSON.
    InvalidJson,
    /// JSON, but not what the request's schema describes.
    SchemaMismatch,
}

impl Structured {
    pub const ALL: [Structured; 3] = [
        Structured::Valid,
        Structured::InvalidJson,
        Structured::SchemaMismatch,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Structured::Valid => "valid",
            Structured::InvalidJson => "invalid_json",
            Structured::SchemaMismatch => "schema_mismatch",
        }
    }
}

const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 20.0, 30.0,
    60.0, 120.0,
];

/// The gateway's own share of a request is tens of microseconds: the buckets resolve that.
const OVERHEAD_BUCKETS: &[f64] = &[
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1,
];

impl Metrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let attempt = ["namespace", "route", "backend", "provider"];
        let requests = IntCounterVec::new(
            Opts::new(
                "switchyard_requests_total",
                "Attempts to serve a request, by backend, tenant, outcome (success, failover, error, unavailable, client_error, shadow) and code (HTTP status or reason)",
            ),
            &[&attempt[..], &["tenant", "outcome", "code"]].concat(),
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "switchyard_request_duration_seconds",
                "Duration of one attempt, from sending to the last byte (gen_ai.client.operation.duration)",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &[&attempt[..], &["outcome"]].concat(),
        )?;
        let ttft = HistogramVec::new(
            HistogramOpts::new(
                "switchyard_time_to_first_token_seconds",
                "Time from sending to the first content of a successful attempt (gen_ai.server.time_to_first_token)",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &attempt,
        )?;
        let tokens = IntCounterVec::new(
            Opts::new(
                "switchyard_tokens_total",
                "Tokens processed, by tenant and type: input (every prompt token), cached_input (the part of input read from a prompt cache) or output (gen_ai.client.token.usage)",
            ),
            &[&attempt[..], &["tenant", "type"]].concat(),
        )?;
        let cost = CounterVec::new(
            Opts::new(
                "switchyard_cost_total",
                "Cost of the tokens processed, by tenant, from the backend's pricing, in its currency",
            ),
            &[&attempt[..], &["tenant"]].concat(),
        )?;
        let failovers = IntCounterVec::new(
            Opts::new(
                "switchyard_failovers_total",
                "Requests moved from one backend to the next tier, by reason",
            ),
            &["namespace", "route", "from", "to", "reason"],
        )?;
        let in_flight = IntGaugeVec::new(
            Opts::new("switchyard_requests_in_flight", "Attempts in progress"),
            &attempt,
        )?;
        let overhead = HistogramVec::new(
            HistogramOpts::new(
                "switchyard_gateway_overhead_seconds",
                "Time a request answered by a backend spent in the gateway itself: its whole time minus the time spent waiting for upstreams",
            )
            .buckets(OVERHEAD_BUCKETS.to_vec()),
            &attempt,
        )?;
        let ejections = IntCounterVec::new(
            Opts::new(
                "switchyard_outlier_ejections_total",
                "Ejections of a backend's endpoint (a pod, or the external backend) as an outlier, by reason",
            ),
            &["namespace", "backend", "reason"],
        )?;
        let ejected = IntGaugeVec::new(
            Opts::new(
                "switchyard_endpoints_ejected",
                "Endpoints of a backend ejected as outliers now",
            ),
            &["namespace", "backend"],
        )?;
        let structured = IntCounterVec::new(
            Opts::new(
                "switchyard_structured_output_total",
                "Successful answers to requests that asked for JSON (JSON mode or a schema), by outcome: valid, invalid_json (the text does not parse) or schema_mismatch",
            ),
            &[&attempt[..], &["outcome"]].concat(),
        )?;
        let config_generation = IntGauge::new(
            "switchyard_gateway_config_generation",
            "Generation of the routing snapshot serving requests; rises with every rebuild after a watch event",
        )?;
        let config_rebuild = Histogram::with_opts(
            HistogramOpts::new(
                "switchyard_gateway_config_rebuild_seconds",
                "Time to build one routing snapshot from the watched objects",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
        )?;
        registry.register(Box::new(config_generation.clone()))?;
        registry.register(Box::new(config_rebuild.clone()))?;
        registry.register(Box::new(ejections.clone()))?;
        registry.register(Box::new(ejected.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(ttft.clone()))?;
        registry.register(Box::new(tokens.clone()))?;
        registry.register(Box::new(cost.clone()))?;
        registry.register(Box::new(failovers.clone()))?;
        registry.register(Box::new(in_flight.clone()))?;
        registry.register(Box::new(overhead.clone()))?;
        registry.register(Box::new(structured.clone()))?;
        Ok(Self {
            requests,
            duration,
            ttft,
            tokens,
            cost,
            failovers,
            in_flight,
            overhead,
            ejections,
            ejected,
            structured,
            config_generation,
            config_rebuild,
        })
    }
}

impl Metrics {
    /// Counts a request moved from one backend to the next tier. Only on the way to another
    /// attempt, so the label lookup stays off the path of a request that succeeds.
    pub fn failover(&self, namespace: &str, route: &str, from: &str, to: &str, reason: &str) {
        self.failovers
            .with_label_values(&[namespace, route, from, to, reason])
            .inc();
    }
}
