//! Warm-up: a new inference pod answers `warmup.requests` real chat completions before the
//! gateway routes live traffic to it, so the first users do not pay for cold caches, CUDA
//! graph capture and lazy kernel compilation.
//!
//! The controller sends the requests itself, from a background task per pod, and records
//! warmed pods in the backend's `status.endpoints`, so a restarted controller does not warm
//! the same pod again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use prometheus::IntCounterVec;
use serde_json::json;

/// How long a failed warm-up waits before the pod is tried again.
pub const RETRY_AFTER: Duration = Duration::from_secs(10);
/// Failed warm-ups in a row after which the backend reports Stalled (it keeps retrying).
pub const STALLED_AFTER: u32 = 3;
/// Requests in flight to one pod during warm-up.
const CONCURRENCY: usize = 8;
/// One warm-up request may take this long (a cold pod is slow; that is the point).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Under way, after `failed` failed attempts in a row.
    Running {
        failed: u32,
    },
    Done,
    /// The last warm-up failed; `attempts` in a row have.
    Failed {
        at: Instant,
        attempts: u32,
    },
}

impl State {
    /// Failed warm-ups in a row, including a retry now under way.
    pub fn failures(self) -> u32 {
        match self {
            State::Running { failed } => failed,
            State::Failed { attempts, .. } => attempts,
            State::Done => 0,
        }
    }
}

/// A pod to warm up.
#[derive(Debug, Clone)]
pub struct Target {
    /// The backend the pod belongs to (`namespace/name`).
    pub backend: String,
    pub uid: String,
    pub pod: String,
    pub address: String,
    pub model: String,
    pub requests: i32,
}

#[derive(Clone)]
pub struct Warmer {
    http: reqwest::Client,
    /// Pod uid → (its backend, state). One warmer serves every backend.
    states: Arc<Mutex<HashMap<String, (String, State)>>>,
    requests_total: IntCounterVec,
}

impl Warmer {
    pub fn new(requests_total: IntCounterVec) -> Self {
        Self {
            // Pod addresses are dialled directly: never through a proxy from the environment.
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(REQUEST_TIMEOUT)
                .build()
                .expect("a plain HTTP client builds"),
            states: Arc::default(),
            requests_total,
        }
    }

    /// Whether `target` is warmed up; starts (or restarts after a failure) its warm-up if not.
    pub fn poll(&self, target: &Target) -> State {
        let mut states = self.states.lock().expect("warm-up state lock");
        let failed_before = match states.get(&target.uid).map(|(_, s)| *s) {
            Some(s @ State::Failed { at, .. }) if at.elapsed() < RETRY_AFTER => return s,
            Some(s @ (State::Running { .. } | State::Done)) => return s,
            Some(State::Failed { attempts, .. }) => attempts,
            None => 0,
        };
        let running = State::Running {
            failed: failed_before,
        };
        states.insert(target.uid.clone(), (target.backend.clone(), running));
        let this = self.clone();
        let target = target.clone();
        tokio::spawn(async move {
            let state = if this.run(&target).await {
                State::Done
            } else {
                State::Failed {
                    at: Instant::now(),
                    attempts: failed_before + 1,
                }
            };
            this.states
                .lock()
                .expect("warm-up state lock")
                .insert(target.uid.clone(), (target.backend.clone(), state));
        });
        running
    }

    /// Forgets the pods of `backend` that no longer exist; other backends' pods are theirs
    /// to judge (forgetting them restarted their warm-ups, without end when backends
    /// reconciled one after another).
    pub fn retain(&self, backend: &str, live_uids: &[&str]) {
        self.states
            .lock()
            .expect("warm-up state lock")
            .retain(|uid, (owner, _)| owner != backend || live_uids.contains(&uid.as_str()));
    }

    async fn run(&self, t: &Target) -> bool {
        let url = format!("http://{}/v1/chat/completions", t.address);
        let body = json!({
            "model": t.model,
            "messages": [{"role": "user", "content": "Warm-up request from Switchyard. Reply with one word."}],
            "max_tokens": 8,
            "temperature": 0,
        });
        let wanted = t.requests.max(0) as usize;
        // Exactly `wanted` requests when the pod answers them all; failures are retried in
        // further rounds, up to half as many again, after which the pod is not serving.
        let budget = wanted + wanted / 2 + 1;
        let started = Instant::now();
        let mut results: Vec<bool> = Vec::with_capacity(wanted);
        let mut remaining = wanted;
        while remaining > 0 && results.len() < budget {
            let round = remaining.min(budget - results.len());
            let outcomes: Vec<bool> = futures::stream::iter(0..round)
                .map(|_| {
                    let req = self.http.post(&url).json(&body);
                    async move { matches!(req.send().await, Ok(r) if r.status().is_success()) }
                })
                .buffer_unordered(CONCURRENCY)
                .collect()
                .await;
            remaining -= outcomes.iter().filter(|s| **s).count();
            results.extend(outcomes);
        }
        let ok = results.iter().filter(|s| **s).count();
        let failed = results.len() - ok;
        self.requests_total
            .with_label_values(&["success"])
            .inc_by(ok as u64);
        self.requests_total
            .with_label_values(&["error"])
            .inc_by(failed as u64);
        let done = ok >= wanted;
        tracing::info!(
            pod = %t.pod, ok, failed, wanted, took_ms = started.elapsed().as_millis() as u64,
            "warm-up {}", if done { "finished" } else { "failed" }
        );
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_backends_pods_are_not_forgotten_when_another_backend_tidies_up() {
        let warmer =
            Warmer::new(IntCounterVec::new(prometheus::Opts::new("w", "w"), &["outcome"]).unwrap());
        let mut states = warmer.states.lock().unwrap();
        states.insert("pa".into(), ("ns/a".into(), State::Done));
        states.insert("pb".into(), ("ns/b".into(), State::Done));
        states.insert("gone".into(), ("ns/b".into(), State::Done));
        drop(states);
        warmer.retain("ns/a", &["pa"]);
        warmer.retain("ns/b", &["pb"]);
        let states = warmer.states.lock().unwrap();
        let mut kept: Vec<_> = states.keys().map(String::as_str).collect();
        kept.sort();
        assert_eq!(kept, ["pa", "pb"]);
    }
}
