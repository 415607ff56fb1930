//! What the gateway exports, per attempt. The controller's analysis queries these, so names
//! and labels are an API. Labels are fixed categories: never a request id or error text.

use prometheus::{
    CounterVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
};

/// Labels shared by every per-attempt series.
#[derive(Debug, Clone)]
pub struct AttemptLabels<'a> {
    pub namespace: &'a str,
    pub route: &'a str,
    pub backend: &'a str,
    pub provider: &'static str,
}

pub struct Metrics {
    requests: IntCounterVec,
    duration: HistogramVec,
    ttft: HistogramVec,
    tokens: IntCounterVec,
    cost: CounterVec,
    failovers: IntCounterVec,
    in_flight: IntGaugeVec,
    ejections: IntCounterVec,
    ejected: IntGaugeVec,
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
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failover => "failover",
            Outcome::Error => "error",
            Outcome::Unavailable => "unavailable",
            Outcome::ClientError => "client_error",
            Outcome::Shadow => "shadow",
        }
    }
}

const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 20.0, 30.0,
    60.0, 120.0,
];

impl Metrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let attempt = ["namespace", "route", "backend", "provider"];
        let requests = IntCounterVec::new(
            Opts::new(
                "switchyard_requests_total",
                "Attempts to serve a request, by backend, outcome (success, failover, error, unavailable, client_error, shadow) and code (HTTP status or reason)",
            ),
            &[&attempt[..], &["outcome", "code"]].concat(),
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
                "Tokens processed, by type input or output (gen_ai.client.token.usage)",
            ),
            &[&attempt[..], &["type"]].concat(),
        )?;
        let cost = CounterVec::new(
            Opts::new(
                "switchyard_cost_total",
                "Cost of the tokens processed, from the backend's pricing, in its currency",
            ),
            &attempt,
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
        registry.register(Box::new(ejections.clone()))?;
        registry.register(Box::new(ejected.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(ttft.clone()))?;
        registry.register(Box::new(tokens.clone()))?;
        registry.register(Box::new(cost.clone()))?;
        registry.register(Box::new(failovers.clone()))?;
        registry.register(Box::new(in_flight.clone()))?;
        Ok(Self {
            requests,
            duration,
            ttft,
            tokens,
            cost,
            failovers,
            in_flight,
            ejections,
            ejected,
        })
    }

    fn base<'a>(l: &'a AttemptLabels<'a>) -> [&'a str; 4] {
        [l.namespace, l.route, l.backend, l.provider]
    }

    pub fn attempt(&self, l: &AttemptLabels<'_>, outcome: Outcome, code: &str, seconds: f64) {
        let b = Self::base(l);
        // Export every live outcome from the first attempt on, at 0 until it happens, so the
        // first failure is an increase Prometheus can rate (a series born at 1 is not).
        for o in [
            Outcome::Success,
            Outcome::Failover,
            Outcome::Error,
            Outcome::Unavailable,
        ] {
            self.duration
                .with_label_values(&[b[0], b[1], b[2], b[3], o.as_str()]);
        }
        self.requests
            .with_label_values(&[b[0], b[1], b[2], b[3], outcome.as_str(), code])
            .inc();
        self.duration
            .with_label_values(&[b[0], b[1], b[2], b[3], outcome.as_str()])
            .observe(seconds);
    }

    /// Counts one ejection and sets how many endpoints of the backend are ejected now.
    pub fn ejection(&self, namespace: &str, backend: &str, reason: &str, ejected: usize) {
        self.ejections
            .with_label_values(&[namespace, backend, reason])
            .inc();
        self.set_ejected(namespace, backend, ejected);
    }

    pub fn set_ejected(&self, namespace: &str, backend: &str, ejected: usize) {
        self.ejected
            .with_label_values(&[namespace, backend])
            .set(ejected as i64);
    }

    pub fn first_token(&self, l: &AttemptLabels<'_>, seconds: f64) {
        self.ttft.with_label_values(&Self::base(l)).observe(seconds);
    }

    /// Counts tokens and their cost; prices are per million tokens.
    pub fn tokens(
        &self,
        l: &AttemptLabels<'_>,
        input: u64,
        output: u64,
        price: Option<(f64, f64)>,
    ) {
        let b = Self::base(l);
        self.tokens
            .with_label_values(&[b[0], b[1], b[2], b[3], "input"])
            .inc_by(input);
        self.tokens
            .with_label_values(&[b[0], b[1], b[2], b[3], "output"])
            .inc_by(output);
        if let Some((pin, pout)) = price {
            let cost = (input as f64 * pin + output as f64 * pout) / 1_000_000.0;
            self.cost.with_label_values(&b).inc_by(cost);
        }
    }

    pub fn failover(&self, namespace: &str, route: &str, from: &str, to: &str, reason: &str) {
        self.failovers
            .with_label_values(&[namespace, route, from, to, reason])
            .inc();
    }

    /// Counts an attempt in flight until the returned guard drops.
    pub fn in_flight(&self, l: &AttemptLabels<'_>) -> InFlightGauge {
        let g = self.in_flight.with_label_values(&Self::base(l));
        g.inc();
        InFlightGauge(g)
    }
}

pub struct InFlightGauge(prometheus::IntGauge);

impl Drop for InFlightGauge {
    fn drop(&mut self) {
        self.0.dec();
    }
}
