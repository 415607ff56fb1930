//! Turning a backend name into something to dial: URL, wire dialect, model id, credentials,
//! timeout and limits, all from the caches, or the fixed reason it cannot take a request now.

use std::sync::Arc;
use std::time::Duration;

use kube::ResourceExt;
use tokio::sync::OwnedSemaphorePermit;

use super::admission::{Admission, Outliers};
use super::balance::{InFlight, InFlightGuard};
use super::cache::Caches;
use super::outlier::Host;
use super::pick::Unavailable;
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
    /// Time to the first byte, and the longest silence within an answer.
    pub timeout: Duration,
    /// Price per million input and output tokens.
    pub price: Option<(f64, f64)>,
    /// The host outlier detection judges, and how many hosts its backend has.
    pub host: Host,
    pub hosts: usize,
    _pod: Option<InFlightGuard>,
    _permit: Option<OwnedSemaphorePermit>,
}

/// Why a backend cannot take this request.
#[derive(Debug)]
pub enum Refusal {
    /// Not now (see `Unavailable`); another backend may.
    Unavailable {
        why: Unavailable,
        provider: &'static str,
        message: String,
        retry_after: Option<Duration>,
    },
    /// This backend cannot express the request (its dialect lacks the operation).
    Unsupported {
        provider: &'static str,
        message: String,
    },
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// The `provider` label of a backend that does not exist.
pub const UNKNOWN_PROVIDER: &str = "unknown";

/// The shared state resolution reads.
pub struct Resolver<'a> {
    pub caches: &'a Caches,
    pub admission: &'a Admission,
    pub outliers: &'a Outliers,
    pub in_flight: &'a Arc<InFlight>,
}

/// What a backend's spec says, before admission.
struct Inspected {
    ib: Arc<InferenceBackend>,
    key: String,
    provider: &'static str,
    dialect: Dialect,
    model: String,
    base: String,
    auth: Option<(&'static str, String)>,
    /// Usable pods of a self-hosted backend (`None` for external backends).
    endpoints: Option<Vec<String>>,
    hosts: usize,
}

impl Resolver<'_> {
    /// Whether the backend can take a request now, without taking anything. With
    /// `ignore_ejection` (panic mode) an ejected backend counts as able.
    pub fn can_take(&self, ns: &str, name: &str, op: Operation, ignore_ejection: bool) -> bool {
        match self.inspect(ns, name, op, ignore_ejection) {
            Ok(i) => {
                let max = i.ib.spec.limits.as_ref().and_then(|l| l.max_concurrency);
                self.admission.has_room(&i.key, max)
            }
            Err(_) => false,
        }
    }

    fn inspect(
        &self,
        ns: &str,
        name: &str,
        op: Operation,
        ignore_ejection: bool,
    ) -> Result<Inspected, Refusal> {
        let unavailable = |why, provider, message: String| Refusal::Unavailable {
            why,
            provider,
            message,
            retry_after: None,
        };
        let ib = self.caches.backend(ns, name).ok_or_else(|| {
            unavailable(
                Unavailable::Missing,
                UNKNOWN_PROVIDER,
                format!("backend {name:?} does not exist"),
            )
        })?;
        let provider = match (&ib.spec.external, &ib.spec.self_hosted) {
            (Some(ext), _) => ext.dialect.as_str(),
            (None, Some(sh)) => sh.runtime.as_str(),
            (None, None) => {
                return Err(unavailable(
                    Unavailable::Missing,
                    UNKNOWN_PROVIDER,
                    format!("backend {name:?} is neither external nor self-hosted"),
                ));
            }
        };
        let key = format!("{ns}/{name}");
        if let Some(left) = self.admission.cooling(&key) {
            return Err(Refusal::Unavailable {
                why: Unavailable::CoolingDown,
                provider,
                message: format!(
                    "backend {name:?} asked to retry after {}s",
                    left.as_secs().max(1)
                ),
                retry_after: Some(left),
            });
        }
        let (dialect, model, base, auth, endpoints) = match (
            &ib.spec.external,
            &ib.spec.self_hosted,
        ) {
            (Some(ext), _) => {
                let auth = match &ext.credentials {
                    Some(c) => {
                        let r = &c.secret_ref;
                        let value = self.caches.secret_value(ns, &r.name, &r.key).ok_or_else(|| {
                            unavailable(
                                Unavailable::NoCredentials,
                                provider,
                                format!(
                                    "backend {name:?}: credentials Secret {:?} or key {:?} missing",
                                    r.name, r.key
                                ),
                            )
                        })?;
                        Some(match ext.dialect {
                            Dialect::Openai => ("authorization", format!("Bearer {value}")),
                            Dialect::Anthropic => ("x-api-key", value),
                        })
                    }
                    None => None,
                };
                let host = Host {
                    namespace: ns.to_owned(),
                    backend: name.to_owned(),
                    endpoint: String::new(),
                };
                if !ignore_ejection && self.outliers.is_ejected(&host) {
                    return Err(unavailable(
                        Unavailable::Ejected,
                        provider,
                        format!("backend {name:?} is ejected after consecutive failures"),
                    ));
                }
                let base = ext.base_url.trim_end_matches('/').to_owned();
                (ext.dialect, ext.model.clone(), base, auth, None)
            }
            (None, Some(sh)) => {
                let all = self.caches.endpoints(&ib);
                if all.is_empty() {
                    return Err(unavailable(
                        Unavailable::NoEndpoints,
                        provider,
                        format!("backend {name:?} has no ready, warmed-up pods"),
                    ));
                }
                // Ejected pods are left out unless fewer than half are healthy (panic).
                let usable = self.outliers.usable(ns, name, &all);
                let hosts = all.len();
                (
                    Dialect::Openai,
                    sh.model.clone(),
                    String::new(),
                    None,
                    Some((usable, hosts)),
                )
            }
            (None, None) => {
                return Err(unavailable(
                    Unavailable::Missing,
                    provider,
                    format!("backend {name:?} is neither external nor self-hosted"),
                ));
            }
        };
        if dialect == Dialect::Anthropic && op == Operation::Embeddings {
            return Err(Refusal::Unsupported {
                provider,
                message: format!(
                    "backend {name:?} speaks Anthropic Messages, which has no embeddings endpoint"
                ),
            });
        }
        let (endpoints, hosts) = match endpoints {
            Some((usable, hosts)) => (Some(usable), hosts),
            None => (None, 1),
        };
        Ok(Inspected {
            ib,
            key,
            provider,
            dialect,
            model,
            base,
            auth,
            endpoints,
            hosts,
        })
    }

    /// Resolves and admits one attempt: takes a `maxConcurrency` permit and, for a
    /// self-hosted backend, the least-loaded usable pod.
    pub fn resolve(
        &self,
        ns: &str,
        name: &str,
        op: Operation,
        ignore_ejection: bool,
    ) -> Result<Target, Refusal> {
        let i = self.inspect(ns, name, op, ignore_ejection)?;
        let limits = i.ib.spec.limits.as_ref();
        let permit = self
            .admission
            .permit(&i.key, limits.and_then(|l| l.max_concurrency))
            .map_err(|()| Refusal::Unavailable {
                why: Unavailable::Saturated,
                provider: i.provider,
                message: format!("backend {name:?} is at its maxConcurrency"),
                retry_after: None,
            })?;
        let (base, endpoint, pod) = match i.endpoints {
            Some(mut endpoints) => {
                // Start the least-loaded search at a random pod so ties spread evenly.
                let start = fastrand::usize(..endpoints.len().max(1));
                endpoints.rotate_left(start);
                let guard =
                    self.in_flight
                        .acquire(&endpoints)
                        .ok_or_else(|| Refusal::Unavailable {
                            why: Unavailable::NoEndpoints,
                            provider: i.provider,
                            message: format!("backend {name:?} has no pods"),
                            retry_after: None,
                        })?;
                let address = guard.address().to_owned();
                (format!("http://{address}/v1"), address, Some(guard))
            }
            None => (i.base, String::new(), None),
        };
        let url = match (i.dialect, op) {
            (Dialect::Openai, Operation::Chat) => format!("{base}/chat/completions"),
            (Dialect::Openai, Operation::Embeddings) => format!("{base}/embeddings"),
            (Dialect::Anthropic, _) if base.ends_with("/v1") => format!("{base}/messages"),
            (Dialect::Anthropic, _) => format!("{base}/v1/messages"),
        };
        let timeout = limits
            .and_then(|l| l.timeout.as_ref())
            .and_then(|t| t.parse().ok())
            .unwrap_or(DEFAULT_TIMEOUT);
        let price = i.ib.spec.pricing.as_ref().and_then(|p| {
            Some((
                p.input_per_million_tokens.parse().ok()?,
                p.output_per_million_tokens.parse().ok()?,
            ))
        });
        Ok(Target {
            backend: i.ib.name_any(),
            provider: i.provider,
            dialect: i.dialect,
            model: i.model,
            url,
            auth: i.auth,
            timeout,
            price,
            host: Host {
                namespace: ns.to_owned(),
                backend: name.to_owned(),
                endpoint,
            },
            hosts: i.hosts,
            _pod: pod,
            _permit: permit,
        })
    }
}
