//! Turning a route's backend into something to dial, from the snapshot: URL, wire dialect,
//! model id, credential header, timeout and limits, all resolved when the snapshot was
//! built; or the fixed reason it cannot take a request now (cool-down, ejection, limit).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderName, HeaderValue, Uri};
use tokio::sync::OwnedSemaphorePermit;

use super::balance::{InFlightGuard, least_loaded};
use super::metrics::AttemptMetrics;
use super::pick::Unavailable;
use super::price::Price;
use super::snapshot::{Backend, BackendState, Kind, Pod, RouteBackend};
use crate::api::Dialect;

use super::client::Upstream;
pub use super::translate::Operation;
use super::translate::{Translator, translator_for};

/// One backend, resolved and admitted for one attempt.
pub struct Target {
    pub backend: Arc<str>,
    pub dialect: Dialect,
    pub model: Arc<str>,
    pub url: Uri,
    /// The backend serves the Responses API itself (`url` is it, for a Responses request).
    pub native_responses: bool,
    /// Header name and value carrying the credential (the value is marked sensitive).
    pub auth: Option<(HeaderName, HeaderValue)>,
    /// The client that trusts the backend's private CA; `None`: the shared one.
    pub client: Option<Upstream>,
    /// Time to the first byte, and the longest silence within an answer.
    pub timeout: Duration,
    pub price: Option<Price>,
    /// The attempt series of this (route, backend).
    pub metrics: Arc<AttemptMetrics>,
    host: Host,
    _permit: Option<OwnedSemaphorePermit>,
    _in_flight: Option<InFlightGuard<Arc<Pod>>>,
}

impl Target {
    /// The translation between the caller and this backend for `op`.
    pub fn translator(&self, op: Operation, caller: Dialect) -> &'static dyn Translator {
        translator_for(op, caller, self.dialect, self.native_responses)
    }

    /// The credential sent upstream (`Bearer …` or the bare key), to scrub echoes of it.
    pub fn credential(&self) -> Option<&str> {
        self.auth.as_ref().and_then(|(_, v)| v.to_str().ok())
    }

    /// The host outlier detection judges for this attempt.
    pub fn host(&self) -> Host {
        self.host.clone()
    }
}

/// A host outlier detection judges: a pod of a self-hosted backend, or an external backend
/// as a whole, and how many hosts its backend has now.
#[derive(Clone)]
pub struct Host {
    pub state: Arc<BackendState>,
    pub pod: Option<Arc<Pod>>,
    pub hosts: usize,
}

impl Host {
    pub fn endpoint(&self) -> &str {
        self.pod.as_ref().map_or("", |p| p.address.as_str())
    }

    /// Records an attempt's result, ejecting the host after consecutive failures.
    pub fn record(&self, failed: bool) {
        let now = Instant::now();
        let mut d = self
            .state
            .outliers
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(e) = d.record(self.endpoint(), self.hosts, failed, now) {
            let ejected = d.ejected_count(now);
            drop(d);
            tracing::warn!(
                namespace = %self.state.namespace,
                backend = %self.state.name,
                endpoint = %self.endpoint(),
                seconds = e.duration.as_secs(),
                times = e.times,
                "ejected as an outlier after consecutive failures"
            );
            self.state.metrics.ejection(ejected);
        }
    }
}

/// Why a backend cannot take this request.
#[derive(Debug)]
pub enum Refusal {
    /// Not now (see `Unavailable`); another backend may.
    Unavailable {
        why: Unavailable,
        message: String,
        retry_after: Option<Duration>,
    },
    /// This backend cannot express the request (its dialect lacks the operation).
    Unsupported { message: String },
}

/// The `provider` label of a backend that does not exist.
pub const UNKNOWN_PROVIDER: &str = "unknown";

fn unavailable(why: Unavailable, message: String) -> Refusal {
    Refusal::Unavailable {
        why,
        message,
        retry_after: None,
    }
}

/// Whether the backend can take a request now, without taking anything. With
/// `ignore_ejection` (panic mode) an ejected backend counts as able.
pub fn can_take(rb: &RouteBackend, op: Operation, ignore_ejection: bool) -> bool {
    match inspect(rb, op, ignore_ejection) {
        Ok((b, _)) => b
            .limit
            .as_ref()
            .is_none_or(|(_, s)| s.available_permits() > 0),
        Err(_) => false,
    }
}

/// What a backend can serve now, before admission: the backend and, for a self-hosted
/// one, its usable pods (ejected ones left out unless fewer than half are healthy).
fn inspect(
    rb: &RouteBackend,
    op: Operation,
    ignore_ejection: bool,
) -> Result<(&Arc<Backend>, Vec<&Arc<Pod>>), Refusal> {
    let name = &rb.name;
    let b = rb
        .backend
        .as_ref()
        .map_err(|why| unavailable(Unavailable::Missing, format!("backend {name:?} {why}")))?;
    if let Some(left) = b.state.cooling() {
        return Err(Refusal::Unavailable {
            why: Unavailable::CoolingDown,
            message: format!(
                "backend {name:?} asked to retry after {}s",
                left.as_secs().max(1)
            ),
            retry_after: Some(left),
        });
    }
    let pods = match &b.kind {
        Kind::External { auth, client, .. } => {
            if let Err(message) = auth {
                return Err(unavailable(Unavailable::NoCredentials, message.clone()));
            }
            if let Err(message) = client {
                return Err(unavailable(Unavailable::NoCaBundle, message.clone()));
            }
            let ejected = || {
                b.state
                    .outliers
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .is_ejected("", Instant::now())
            };
            if !ignore_ejection && ejected() {
                return Err(unavailable(
                    Unavailable::Ejected,
                    format!("backend {name:?} is ejected after consecutive failures"),
                ));
            }
            vec![]
        }
        Kind::SelfHosted { pods } => {
            if pods.is_empty() {
                return Err(unavailable(
                    Unavailable::NoEndpoints,
                    format!("backend {name:?} has no ready, warmed-up pods"),
                ));
            }
            b.state
                .outliers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .usable(pods, |p| p.address.as_str(), Instant::now())
        }
    };
    if let Some(message) = lacks(b, op) {
        return Err(Refusal::Unsupported {
            message: format!("backend {name:?} speaks Anthropic Messages: {message}"),
        });
    }
    Ok((b, pods))
}

/// Why a backend's dialect cannot express `op` at all, if it cannot.
fn lacks(b: &Backend, op: Operation) -> Option<&'static str> {
    match (b.dialect, op) {
        (Dialect::Anthropic, Operation::Embeddings) => Some("it has no embeddings endpoint"),
        (Dialect::Anthropic, Operation::Completions) => {
            Some(crate::gateway::translate::pair::LEGACY_COMPLETIONS_NEED_OPENAI)
        }
        _ => None,
    }
}

/// Whether the backend's dialect can express `op` (whether or not it can take it now). A
/// backend that does not exist may (its landing is recorded as missing).
pub fn supports(rb: &RouteBackend, op: Operation) -> bool {
    match &rb.backend {
        Ok(b) => lacks(b, op).is_none(),
        Err(_) => true,
    }
}

/// Resolves and admits one attempt: takes a `maxConcurrency` permit and, for a self-hosted
/// backend, the least-loaded usable pod.
pub fn resolve(rb: &RouteBackend, op: Operation, ignore_ejection: bool) -> Result<Target, Refusal> {
    let (b, pods) = inspect(rb, op, ignore_ejection)?;
    let name = &rb.name;
    let permit = match &b.limit {
        None => None,
        Some((_, sem)) => Some(sem.clone().try_acquire_owned().map_err(|_| {
            unavailable(
                Unavailable::Saturated,
                format!("backend {name:?} is at its maxConcurrency"),
            )
        })?),
    };
    let no_endpoint = || Refusal::Unsupported {
        message: format!("backend {name:?} has no endpoint for this request"),
    };
    let (url, auth, client, pod, hosts, native_responses) = match &b.kind {
        Kind::External { urls, auth, client } => (
            urls.get(op).ok_or_else(no_endpoint)?.clone(),
            auth.as_ref().ok().cloned().flatten(),
            client.as_ref().ok().cloned().flatten(),
            None,
            1,
            urls.responses.is_some(),
        ),
        Kind::SelfHosted { pods: all } => {
            // Start the least-loaded search at a random pod so ties spread evenly.
            let start = fastrand::usize(..pods.len().max(1));
            let guard: InFlightGuard<Arc<Pod>> = least_loaded(&pods, start).ok_or_else(|| {
                unavailable(
                    Unavailable::NoEndpoints,
                    format!("backend {name:?} has no pods"),
                )
            })?;
            (
                guard.pod().urls.get(op).ok_or_else(no_endpoint)?.clone(),
                None,
                None,
                Some(guard),
                all.len(),
                false,
            )
        }
    };
    Ok(Target {
        backend: b.name.clone(),
        dialect: b.dialect,
        model: b.model.clone(),
        url,
        native_responses,
        auth,
        client,
        timeout: b.timeout,
        price: b.price,
        metrics: rb.metrics.clone(),
        host: Host {
            state: b.state.clone(),
            pod: pod.as_ref().map(|g| g.pod().clone()),
            hosts,
        },
        _permit: permit,
        _in_flight: pod,
    })
}
