//! Per-backend state that decides whether a backend may take a request now: Retry-After
//! cool-downs, `maxConcurrency` permits and outlier ejections (with their metrics).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::metrics::Metrics;
use super::outlier::{Detector, Host, OutlierConfig};

/// Concurrency limits and Retry-After cool-downs, keyed by `namespace/backend`.
#[derive(Default)]
pub struct Admission {
    limits: Mutex<HashMap<String, (i32, Arc<Semaphore>)>>,
    cooldowns: Mutex<HashMap<String, Instant>>,
}

impl Admission {
    /// Honours a 429's Retry-After: the backend gets no attempts until then.
    pub fn cool_down(&self, key: &str, until: Instant) {
        self.cooldowns
            .lock()
            .expect("cooldown lock")
            .insert(key.to_owned(), until);
    }

    /// How long the backend is still cooling down, if it is.
    pub fn cooling(&self, key: &str) -> Option<Duration> {
        let mut c = self.cooldowns.lock().expect("cooldown lock");
        let now = Instant::now();
        match c.get(key) {
            Some(until) if *until > now => Some(*until - now),
            Some(_) => {
                c.remove(key);
                None
            }
            None => None,
        }
    }

    fn semaphore(&self, key: &str, max: i32) -> Arc<Semaphore> {
        let mut limits = self.limits.lock().expect("limits lock");
        let entry = limits
            .entry(key.to_owned())
            .or_insert_with(|| (max, Arc::new(Semaphore::new(max as usize))));
        if entry.0 != max {
            // A changed limit takes effect for new requests; old permits drain.
            *entry = (max, Arc::new(Semaphore::new(max as usize)));
        }
        entry.1.clone()
    }

    /// Whether a permit would be granted now (no side effect).
    pub fn has_room(&self, key: &str, max: Option<i32>) -> bool {
        match max.filter(|m| *m > 0) {
            Some(max) => self.semaphore(key, max).available_permits() > 0,
            None => true,
        }
    }

    /// A permit under `maxConcurrency`; `Err` when the backend is full.
    pub fn permit(&self, key: &str, max: Option<i32>) -> Result<Option<OwnedSemaphorePermit>, ()> {
        let Some(max) = max.filter(|m| *m > 0) else {
            return Ok(None);
        };
        self.semaphore(key, max)
            .try_acquire_owned()
            .map(Some)
            .map_err(|_| ())
    }
}

/// The outlier detector shared by all requests, exporting what it does.
pub struct Outliers {
    detector: Mutex<Detector>,
}

/// Envoy's `reason` for ejections by consecutive failures.
const CONSECUTIVE: &str = "consecutive_5xx";

impl Outliers {
    pub fn new(cfg: OutlierConfig) -> Self {
        Self {
            detector: Mutex::new(Detector::new(cfg)),
        }
    }

    /// Records an attempt's result on `host`, one of `hosts` endpoints of its backend.
    pub fn record(&self, metrics: &Metrics, host: &Host, hosts: usize, failed: bool) {
        let now = Instant::now();
        let mut d = self.detector.lock().expect("outlier lock");
        if let Some(e) = d.record(host, hosts, failed, now) {
            let ejected = d.ejected_count(&host.namespace, &host.backend, now);
            drop(d);
            tracing::warn!(
                namespace = %host.namespace,
                backend = %host.backend,
                endpoint = %host.endpoint,
                seconds = e.duration.as_secs(),
                times = e.times,
                "ejected as an outlier after consecutive failures"
            );
            metrics.ejection(&host.namespace, &host.backend, CONSECUTIVE, ejected);
        }
    }

    pub fn is_ejected(&self, host: &Host) -> bool {
        self.detector
            .lock()
            .expect("outlier lock")
            .is_ejected(host, Instant::now())
    }

    /// The endpoints of a self-hosted backend that may get requests (see `Detector::usable`).
    pub fn usable(&self, namespace: &str, backend: &str, endpoints: &[String]) -> Vec<String> {
        self.detector
            .lock()
            .expect("outlier lock")
            .usable(namespace, backend, endpoints, Instant::now())
            .into_iter()
            .cloned()
            .collect()
    }

    /// Ends the ejections that are over and updates the gauge.
    pub fn sweep(&self, metrics: &Metrics) {
        let now = Instant::now();
        let mut d = self.detector.lock().expect("outlier lock");
        for (ns, backend) in d.sweep(now) {
            metrics.set_ejected(&ns, &backend, d.ejected_count(&ns, &backend, now));
        }
    }
}
