//! Metric handles resolved once per (route, backend) and per backend, kept in the routing
//! snapshot: the hot path increments a handle instead of looking labels up. Each series is
//! created the first time it is used, so a route that never gets traffic costs nothing.

use std::sync::{Arc, OnceLock, RwLock};

use prometheus::{Counter, Histogram, IntCounter, IntGauge};

use super::{Metrics, Outcome, Structured};
use crate::gateway::price::Price;
use crate::gateway::translate::Usage;

/// The outcomes exported from a route's first attempt on (see `attempt`).
const LIVE: [Outcome; 4] = [
    Outcome::Success,
    Outcome::Failover,
    Outcome::Error,
    Outcome::Unavailable,
];

/// Envoy's `reason` for ejections by consecutive failures.
const CONSECUTIVE: &str = "consecutive_5xx";

/// The per-attempt series of one (namespace, route, backend, provider).
pub struct AttemptMetrics {
    vecs: Arc<Metrics>,
    namespace: Box<str>,
    route: Box<str>,
    backend: Box<str>,
    provider: &'static str,
    durations: [OnceLock<Histogram>; 7],
    /// (tenant, outcome, code) → counter; a handful of entries, scanned without allocating.
    requests: RwLock<Vec<RequestSeries>>,
    ttft: OnceLock<Histogram>,
    /// Per tenant: input, cached input and output tokens, and cost.
    tokens: RwLock<Vec<(Box<str>, TenantTokens)>>,
    in_flight: OnceLock<IntGauge>,
    overhead: OnceLock<Histogram>,
    /// Per `Structured` outcome; all three created together (see `structured`).
    structured: OnceLock<[IntCounter; 3]>,
}

impl AttemptMetrics {
    pub fn new(
        vecs: Arc<Metrics>,
        namespace: &str,
        route: &str,
        backend: &str,
        provider: &'static str,
    ) -> Self {
        Self {
            vecs,
            namespace: namespace.into(),
            route: route.into(),
            backend: backend.into(),
            provider,
            durations: Default::default(),
            requests: RwLock::default(),
            ttft: OnceLock::new(),
            tokens: RwLock::default(),
            in_flight: OnceLock::new(),
            overhead: OnceLock::new(),
            structured: OnceLock::new(),
        }
    }

    pub fn provider(&self) -> &'static str {
        self.provider
    }

    fn base(&self) -> [&str; 4] {
        [&self.namespace, &self.route, &self.backend, self.provider]
    }

    fn with<'a>(&'a self, extra: &'a str) -> [&'a str; 5] {
        let [n, r, b, p] = self.base();
        [n, r, b, p, extra]
    }

    fn duration(&self, outcome: Outcome) -> &Histogram {
        self.durations[outcome as usize].get_or_init(|| {
            self.vecs
                .duration
                .with_label_values(&self.with(outcome.as_str()))
        })
    }

    fn requests(&self, tenant: &str, outcome: Outcome, code: &str) -> IntCounter {
        let find = |v: &Vec<RequestSeries>| {
            v.iter()
                .find(|(t, o, c, _)| *o == outcome && &**c == code && &**t == tenant)
                .map(|(_, _, _, h)| h.clone())
        };
        if let Some(h) = find(&self.requests.read().unwrap_or_else(|e| e.into_inner())) {
            return h;
        }
        let mut v = self.requests.write().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = find(&v) {
            return h;
        }
        let [n, r, b, p] = self.base();
        let h = self
            .vecs
            .requests
            .with_label_values(&[n, r, b, p, tenant, outcome.as_str(), code]);
        v.push((tenant.into(), outcome, code.into(), h.clone()));
        h
    }

    /// Records one attempt made for `tenant`. Every attempt of a replayed evaluation case
    /// is `outcome="eval"`, decided here, so no path of the proxy can count one as live.
    pub fn attempt(&self, tenant: &str, outcome: Outcome, code: &str, seconds: f64) {
        let outcome = if tenant == crate::gateway::auth::EVALUATION_TENANT {
            Outcome::Eval
        } else {
            outcome
        };
        // Export every live outcome from the first attempt on, at 0 until it happens, so the
        // first failure is an increase Prometheus can rate (a series born at 1 is not).
        for o in LIVE {
            self.duration(o);
        }
        self.requests(tenant, outcome, code).inc();
        self.duration(outcome).observe(seconds);
    }

    pub fn first_token(&self, seconds: f64) {
        self.ttft
            .get_or_init(|| self.vecs.ttft.with_label_values(&self.base()))
            .observe(seconds);
    }

    /// Counts `tenant`'s tokens and their cost. `input` stays every prompt token (what
    /// dashboards summed before cached input was counted); `cached_input` is the part of it
    /// read from a prompt cache.
    pub fn tokens(&self, tenant: &str, usage: Usage, price: Option<Price>) {
        let count = |t: &TenantTokens| {
            t.input.inc_by(usage.input);
            t.cached_input.inc_by(usage.cached.min(usage.input));
            t.output.inc_by(usage.output);
            if let Some(price) = price {
                t.cost
                    .get_or_init(|| self.vecs.cost.with_label_values(&self.with(tenant)))
                    .inc_by(price.cost(&usage));
            }
        };
        {
            let v = self.tokens.read().unwrap_or_else(|e| e.into_inner());
            if let Some((_, t)) = v.iter().find(|(t, _)| &**t == tenant) {
                return count(t);
            }
        }
        let mut v = self.tokens.write().unwrap_or_else(|e| e.into_inner());
        if !v.iter().any(|(t, _)| &**t == tenant) {
            let [n, r, b, p] = self.base();
            let t = TenantTokens {
                input: self
                    .vecs
                    .tokens
                    .with_label_values(&[n, r, b, p, tenant, "input"]),
                cached_input: self.vecs.tokens.with_label_values(&[
                    n,
                    r,
                    b,
                    p,
                    tenant,
                    "cached_input",
                ]),
                output: self
                    .vecs
                    .tokens
                    .with_label_values(&[n, r, b, p, tenant, "output"]),
                cost: OnceLock::new(),
            };
            v.push((tenant.into(), t));
        }
        if let Some((_, t)) = v.iter().find(|(t, _)| &**t == tenant) {
            count(t);
        }
    }

    /// The gateway's own time for a request this backend answered.
    pub fn overhead(&self, seconds: f64) {
        self.overhead
            .get_or_init(|| self.vecs.overhead.with_label_values(&self.base()))
            .observe(seconds);
    }

    /// Counts one judged answer to a request that asked for JSON. All outcomes are exported
    /// from the first one on, at 0 until they happen, so the first invalid answer is an
    /// increase Prometheus can rate.
    pub fn structured(&self, outcome: Structured) {
        let counters = self.structured.get_or_init(|| {
            Structured::ALL.map(|o| {
                self.vecs
                    .structured
                    .with_label_values(&self.with(o.as_str()))
            })
        });
        counters[outcome as usize].inc();
    }

    /// Counts an attempt in flight until the returned guard drops.
    pub fn in_flight(&self) -> InFlightGauge {
        let g = self
            .in_flight
            .get_or_init(|| self.vecs.in_flight.with_label_values(&self.base()))
            .clone();
        g.inc();
        InFlightGauge(g)
    }

    /// Drops every series this handle created from the registry (its route or backend is
    /// gone). Only called once no snapshot or request holds the handle any more.
    pub fn remove_series(&self) {
        let v = &self.vecs;
        for o in Outcome::ALL {
            if self.durations[o as usize].get().is_some() {
                let _ = v.duration.remove_label_values(&self.with(o.as_str()));
            }
        }
        let [n, r, b, p] = self.base();
        for (t, o, code, _) in self
            .requests
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = v
                .requests
                .remove_label_values(&[n, r, b, p, t, o.as_str(), code]);
        }
        if self.ttft.get().is_some() {
            let _ = v.ttft.remove_label_values(&self.base());
        }
        for (t, tokens) in self.tokens.read().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = v.tokens.remove_label_values(&[n, r, b, p, t, "input"]);
            let _ = v
                .tokens
                .remove_label_values(&[n, r, b, p, t, "cached_input"]);
            let _ = v.tokens.remove_label_values(&[n, r, b, p, t, "output"]);
            if tokens.cost.get().is_some() {
                let _ = v.cost.remove_label_values(&[n, r, b, p, t]);
            }
        }
        if self.in_flight.get().is_some() {
            let _ = v.in_flight.remove_label_values(&self.base());
        }
        if self.overhead.get().is_some() {
            let _ = v.overhead.remove_label_values(&self.base());
        }
        if self.structured.get().is_some() {
            for o in Structured::ALL {
                let _ = v.structured.remove_label_values(&self.with(o.as_str()));
            }
        }
    }
}

/// `(tenant, outcome, code)` and its counter.
type RequestSeries = (Box<str>, Outcome, Box<str>, IntCounter);

/// One tenant's token counters on one (route, backend).
struct TenantTokens {
    input: IntCounter,
    cached_input: IntCounter,
    output: IntCounter,
    cost: OnceLock<Counter>,
}

pub struct InFlightGauge(IntGauge);

impl Drop for InFlightGauge {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The outlier series of one backend.
pub struct BackendMetrics {
    vecs: Arc<Metrics>,
    namespace: Box<str>,
    backend: Box<str>,
    ejections: OnceLock<IntCounter>,
    ejected: OnceLock<IntGauge>,
}

impl BackendMetrics {
    pub fn new(vecs: Arc<Metrics>, namespace: &str, backend: &str) -> Self {
        Self {
            vecs,
            namespace: namespace.into(),
            backend: backend.into(),
            ejections: OnceLock::new(),
            ejected: OnceLock::new(),
        }
    }

    /// Counts one ejection and sets how many endpoints of the backend are ejected now.
    pub fn ejection(&self, ejected: usize) {
        self.ejections
            .get_or_init(|| {
                self.vecs.ejections.with_label_values(&[
                    &*self.namespace,
                    &*self.backend,
                    CONSECUTIVE,
                ])
            })
            .inc();
        self.set_ejected(ejected);
    }

    pub fn set_ejected(&self, ejected: usize) {
        self.ejected
            .get_or_init(|| {
                self.vecs
                    .ejected
                    .with_label_values(&[&*self.namespace, &*self.backend])
            })
            .set(ejected as i64);
    }
}
