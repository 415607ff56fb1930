//! Turning a backend name into something to dial: URL, wire dialect, model id, credentials,
//! timeout and limits, all from the caches.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::ResourceExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::balance::{InFlight, InFlightGuard};
use super::cache::Caches;
use super::failure::Failure;
use crate::api::{Dialect, InferenceBackend};

/// The operation a client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Chat,
    Embeddings,
}

/// One backend, resolved and admitted for one attempt.
pub struct Target {
    pub backend: String,
    /// Dialect or runtime, for the `provider` label.
    pub provider: &'static str,
    pub dialect: Dialect,
    pub model: String,
    pub url: String,
    /// Header name and value carrying the credential.
    pub auth: Option<(&'static str, String)>,
    pub timeout: Duration,
    /// Price per million input and output tokens.
    pub price: Option<(f64, f64)>,
    _pod: Option<InFlightGuard>,
    _permit: Option<OwnedSemaphorePermit>,
}

/// Why a backend cannot take this attempt, with a message for the client.
pub struct Unavailable {
    pub failure: Failure,
    pub message: String,
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Per-backend admission state: concurrency limits and Retry-After cool-downs.
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

    fn cooling(&self, key: &str) -> Option<Duration> {
        let mut c = self.cooldowns.lock().expect("cooldown lock");
        match c.get(key) {
            Some(until) if *until > Instant::now() => Some(*until - Instant::now()),
            Some(_) => {
                c.remove(key);
                None
            }
            None => None,
        }
    }

    fn permit(&self, key: &str, max: Option<i32>) -> Result<Option<OwnedSemaphorePermit>, ()> {
        let Some(max) = max.filter(|m| *m > 0) else {
            return Ok(None);
        };
        let sem = {
            let mut limits = self.limits.lock().expect("limits lock");
            let entry = limits
                .entry(key.to_owned())
                .or_insert_with(|| (max, Arc::new(Semaphore::new(max as usize))));
            if entry.0 != max {
                // A changed limit takes effect for new requests; old permits drain.
                *entry = (max, Arc::new(Semaphore::new(max as usize)));
            }
            entry.1.clone()
        };
        sem.try_acquire_owned().map(Some).map_err(|_| ())
    }
}

pub fn resolve(
    caches: &Caches,
    admission: &Admission,
    in_flight: &Arc<InFlight>,
    namespace: &str,
    name: &str,
    op: Operation,
) -> Result<Target, Unavailable> {
    let unavailable = |failure, message: String| Unavailable { failure, message };
    let ib: Arc<InferenceBackend> = caches
        .backend(namespace, name)
        .ok_or_else(|| unavailable(Failure::Connect, format!("backend {name:?} does not exist")))?;
    let key = format!("{namespace}/{name}");
    if let Some(left) = admission.cooling(&key) {
        return Err(unavailable(
            Failure::RateLimited {
                retry_after: Some(left),
            },
            format!(
                "backend {name:?} asked to retry after {}s",
                left.as_secs().max(1)
            ),
        ));
    }
    let limits = ib.spec.limits.as_ref();
    let timeout = limits
        .and_then(|l| l.timeout.as_ref())
        .and_then(|t| t.parse().ok())
        .unwrap_or(DEFAULT_TIMEOUT);
    let price = ib.spec.pricing.as_ref().and_then(|p| {
        Some((
            p.input_per_million_tokens.parse().ok()?,
            p.output_per_million_tokens.parse().ok()?,
        ))
    });

    let (provider, dialect, model, base, auth, pod) =
        match (&ib.spec.external, &ib.spec.self_hosted) {
            (Some(ext), _) => {
                let auth = match &ext.credentials {
                    Some(c) => {
                        let r = &c.secret_ref;
                        let value = caches.secret_value(namespace, &r.name, &r.key).ok_or_else(
                        || {
                            unavailable(
                                Failure::Connect,
                                format!(
                                    "backend {name:?}: credentials Secret {:?} or key {:?} missing",
                                    r.name, r.key
                                ),
                            )
                        },
                    )?;
                        Some(match ext.dialect {
                            Dialect::Openai => ("authorization", format!("Bearer {value}")),
                            Dialect::Anthropic => ("x-api-key", value),
                        })
                    }
                    None => None,
                };
                (
                    ext.dialect.as_str(),
                    ext.dialect,
                    ext.model.clone(),
                    ext.base_url.trim_end_matches('/').to_owned(),
                    auth,
                    None,
                )
            }
            (None, Some(sh)) => {
                let mut endpoints = caches.endpoints(&ib);
                if endpoints.is_empty() {
                    return Err(unavailable(
                        Failure::Connect,
                        format!("backend {name:?} has no ready, warmed-up pods"),
                    ));
                }
                // Start the least-loaded search at a random pod so ties spread evenly.
                let start = fastrand::usize(..endpoints.len());
                endpoints.rotate_left(start);
                let guard = in_flight.acquire(&endpoints).ok_or_else(|| {
                    unavailable(Failure::Connect, format!("backend {name:?} has no pods"))
                })?;
                let base = format!("http://{}/v1", guard.address());
                (
                    sh.runtime.as_str(),
                    Dialect::Openai,
                    sh.model.clone(),
                    base,
                    None,
                    Some(guard),
                )
            }
            (None, None) => {
                return Err(unavailable(
                    Failure::Connect,
                    format!("backend {name:?} is invalid"),
                ));
            }
        };

    let url = match (dialect, op) {
        (Dialect::Openai, Operation::Chat) => format!("{base}/chat/completions"),
        (Dialect::Openai, Operation::Embeddings) => format!("{base}/embeddings"),
        (Dialect::Anthropic, Operation::Chat) if base.ends_with("/v1") => {
            format!("{base}/messages")
        }
        (Dialect::Anthropic, Operation::Chat) => format!("{base}/v1/messages"),
        (Dialect::Anthropic, Operation::Embeddings) => {
            return Err(unavailable(
                Failure::Client { status: 400 },
                format!(
                    "backend {name:?} speaks Anthropic Messages, which has no embeddings endpoint"
                ),
            ));
        }
    };

    let permit = admission
        .permit(&key, limits.and_then(|l| l.max_concurrency))
        .map_err(|()| {
            unavailable(
                Failure::Saturated,
                format!("backend {name:?} is at its maxConcurrency"),
            )
        })?;

    Ok(Target {
        backend: ib.name_any(),
        provider,
        dialect,
        model,
        url,
        auth,
        timeout,
        price,
        _pod: pod,
        _permit: permit,
    })
}
