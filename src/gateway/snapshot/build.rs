//! Building one snapshot from the reflector stores: one pass over each kind of object, so a
//! rebuild is linear in the configuration's size and the watch task coalesces events to
//! bound how often it runs. State that outlives a generation is carried over by key from
//! the previous snapshot.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, header};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use tokio::sync::Semaphore;

use super::{
    Backend, BackendState, Key, Kind, Listed, Mirror, Pod, Route, RouteBackend, Snapshot,
    UrlStrings, Urls, tenants,
};
use crate::api::conflict::{model_of, precedence};
use crate::api::{CredentialPurpose, Dialect, InferenceBackend, ModelRoute, Runtime};
use crate::gateway::balance::SmoothWeighted;
use crate::gateway::cache::{Caches, Stores};
use crate::gateway::client::Upstream;
use crate::gateway::metrics::{AttemptMetrics, Metrics};
use crate::gateway::outlier::OutlierConfig;
use crate::gateway::price::Price;
use crate::gateway::upstream::UNKNOWN_PROVIDER;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Why a backend a route names cannot serve, completing "backend \"x\" ...".
const MISSING: &str = "does not exist";
const NEITHER: &str = "is neither external nor self-hosted";

/// `(namespace, route, backend, provider)`: the labels of one attempt-metrics handle.
type MetricsKey = (String, String, Arc<str>, &'static str);

/// Builds successive snapshots, keeping what must survive them.
pub struct Builder {
    metrics: Arc<Metrics>,
    outliers: OutlierConfig,
    /// Handles of (route, backend) pairs that left the table. Their series are removed once
    /// nothing holds them (no request of an older snapshot can count into them any more);
    /// a pair that comes back first takes its handle back from here.
    retired: HashMap<MetricsKey, Arc<AttemptMetrics>>,
    private_cas: PrivateCas,
}

/// Clients of backends behind private CAs, one per distinct bundle, kept across snapshots
/// so that their pooled connections survive a rebuild; a bundle no backend uses any more is
/// dropped at the next one.
#[derive(Default)]
struct PrivateCas {
    clients: HashMap<Vec<u8>, Upstream>,
    used: HashSet<Vec<u8>>,
}

impl PrivateCas {
    fn client(&mut self, pem: &str) -> Result<Upstream, String> {
        let digest = ring::digest::digest(&ring::digest::SHA256, pem.as_bytes())
            .as_ref()
            .to_vec();
        self.used.insert(digest.clone());
        if let Some(c) = self.clients.get(&digest) {
            return Ok(c.clone());
        }
        let client = Upstream::with_roots(crate::tls::ca_roots(pem.as_bytes())?);
        self.clients.insert(digest, client.clone());
        Ok(client)
    }

    /// Drops the clients of bundles the last build did not use.
    fn prune(&mut self) {
        let used = std::mem::take(&mut self.used);
        self.clients.retain(|k, _| used.contains(k));
    }
}

impl Builder {
    pub fn new(metrics: Arc<Metrics>, outliers: OutlierConfig) -> Self {
        Self {
            metrics,
            outliers,
            retired: HashMap::new(),
            private_cas: PrivateCas::default(),
        }
    }

    pub fn build(&mut self, caches: &Caches, prev: &Snapshot) -> Snapshot {
        // Handles retired at the last swap that no request holds any more: the only
        // reference left is ours.
        self.retired.retain(|_, m| {
            let held = Arc::strong_count(m) > 1;
            if !held {
                m.remove_series();
            }
            held
        });

        let slices = caches.slices.state();
        let ready = ready_addresses(&slices);
        let mut backends: HashMap<Key, Arc<Backend>> = HashMap::new();
        let mut invalid: HashSet<Key> = HashSet::new();
        for ib in caches.backends.state() {
            let key = (ib.namespace().unwrap_or_default(), ib.name_any());
            match self.backend(&ib, &key, prev.backends.get(&key), &ready, &caches.secrets) {
                Some(b) => {
                    backends.insert(key, Arc::new(b));
                }
                None => {
                    invalid.insert(key);
                }
            }
        }

        let all_routes = caches.routes.state();
        let mut winners: HashMap<String, (&Arc<ModelRoute>, _)> = HashMap::new();
        let mut listed: Vec<Listed> = vec![];
        for r in &all_routes {
            let model = model_of(r);
            if r.status.as_ref().is_some_and(|s| !s.weights.is_empty()) {
                listed.push(Listed {
                    model: model.clone(),
                    created: r.creation_timestamp().map_or(0, |t| t.0.as_second()),
                    route: (r.namespace().unwrap_or_default(), r.name_any()),
                });
            }
            // When two routes claim one name, the older keeps serving (see api::conflict).
            let p = precedence(r);
            match winners.get(&model) {
                Some((_, best)) if *best <= p => {}
                _ => {
                    winners.insert(model, (r, p));
                }
            }
        }
        // One entry per model: the route that serves it (the older claim).
        listed.retain(|l| {
            winners.get(&l.model).is_some_and(|(w, _)| {
                w.name_any() == l.route.1 && w.namespace().unwrap_or_default() == l.route.0
            })
        });
        listed.sort_by(|a, b| a.model.cmp(&b.model));
        self.private_cas.prune();

        let mut models = HashMap::with_capacity(winners.len());
        let mut routes = HashMap::with_capacity(winners.len());
        let mut kept: HashSet<*const AttemptMetrics> = HashSet::new();
        for (model, (mr, _)) in winners {
            let key = (mr.namespace().unwrap_or_default(), mr.name_any());
            let found = |name: &str| {
                let k = (key.0.clone(), name.to_owned());
                match backends.get(&k) {
                    Some(b) => Ok(b.clone()),
                    None if invalid.contains(&k) => Err(NEITHER),
                    None => Err(MISSING),
                }
            };
            let route = Arc::new(self.route(mr, &key, prev.routes.get(&key), &found));
            kept.extend(route.backends.iter().map(|b| Arc::as_ptr(&b.metrics)));
            models.insert(model, route.clone());
            routes.insert(key, route);
        }
        for old in prev.routes.values() {
            for b in &old.backends {
                if !kept.contains(&Arc::as_ptr(&b.metrics)) {
                    let key = metrics_key(old, &b.name, b.metrics.provider());
                    self.retired.insert(key, b.metrics.clone());
                }
            }
        }

        Snapshot {
            generation: prev.generation + 1,
            models,
            routes,
            backends,
            listed,
            keys: tenants::keys(&caches.tenants, &caches.secrets, &all_routes),
        }
    }

    fn route(
        &mut self,
        mr: &ModelRoute,
        key: &Key,
        prev: Option<&Arc<Route>>,
        found: &dyn Fn(&str) -> Result<Arc<Backend>, &'static str>,
    ) -> Route {
        let status = mr.status.as_ref();
        let mut names: Vec<&str> = vec![];
        let mut weights = vec![];
        for w in status.map(|s| s.weights.as_slice()).unwrap_or_default() {
            if !names.contains(&w.name.as_str()) {
                names.push(&w.name);
                weights.push(w.weight);
            }
        }
        let mut fallback = vec![];
        for f in &mr.spec.fallback {
            // A fallback tier that is also in the split is tried by weight already.
            if !names.contains(&f.name.as_str()) {
                fallback.push(names.len());
                names.push(&f.name);
            }
        }
        let mirror = status.and_then(|s| s.mirror.as_ref()).map(|m| {
            let mut positions = vec![];
            for b in &m.backends {
                match names.iter().position(|x| *x == b.as_str()) {
                    Some(i) => positions.push(i),
                    None => {
                        positions.push(names.len());
                        names.push(b);
                    }
                }
            }
            Mirror {
                percent: m.percent.clamp(0, 100) as u64,
                backends: positions,
            }
        });
        // The backends a migration moves to, before they carry traffic: an evaluation replay
        // may pin them.
        for t in status.map(|s| s.target.as_slice()).unwrap_or_default() {
            if !names.contains(&t.name.as_str()) {
                names.push(&t.name);
            }
        }
        let route_backends = names
            .iter()
            .map(|name| {
                let backend = found(name);
                let provider = backend.as_ref().map_or(UNKNOWN_PROVIDER, |b| b.provider);
                let carried = prev.and_then(|p| {
                    p.backends
                        .iter()
                        .find(|b| &*b.name == *name && b.metrics.provider() == provider)
                });
                let name: Arc<str> = match carried {
                    Some(c) => c.name.clone(),
                    None => (*name).into(),
                };
                let metrics = match carried {
                    Some(c) => c.metrics.clone(),
                    None => {
                        let mk = (key.0.clone(), key.1.clone(), name.clone(), provider);
                        self.retired.remove(&mk).unwrap_or_else(|| {
                            Arc::new(AttemptMetrics::new(
                                self.metrics.clone(),
                                &key.0,
                                &key.1,
                                &name,
                                provider,
                            ))
                        })
                    }
                };
                RouteBackend {
                    name,
                    backend,
                    metrics,
                }
            })
            .collect();
        let landings = match prev {
            Some(p)
                if p.landings
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .is_for(weights.iter().copied()) =>
            {
                p.landings.clone()
            }
            _ => Arc::new(Mutex::new(SmoothWeighted::new(weights.iter().copied()))),
        };
        Route {
            namespace: key.0.clone(),
            name: key.1.clone(),
            backends: route_backends,
            weights,
            fallback,
            mirror,
            landings,
        }
    }

    /// Resolves one InferenceBackend; `None` when it is neither external nor self-hosted.
    fn backend(
        &mut self,
        ib: &InferenceBackend,
        key: &Key,
        prev: Option<&Arc<Backend>>,
        ready: &HashMap<(&str, &str), Vec<&str>>,
        secrets: &Stores<Secret>,
    ) -> Option<Backend> {
        let (ns, name) = (&key.0, &key.1);
        let state = match prev {
            Some(p) => p.state.clone(),
            None => Arc::new(BackendState::new(&self.metrics, self.outliers, ns, name)),
        };
        let (provider, dialect, model, kind) = match (&ib.spec.external, &ib.spec.self_hosted) {
            (Some(ext), _) => {
                let insecure =
                    !ext.base_url.starts_with("https://") && ext.allow_insecure != Some(true);
                let auth = match &ext.credentials {
                    None => Ok(None),
                    // Admission refuses this; an object stored before the rule existed is
                    // refused here: the key never goes over plain http unless allowed.
                    Some(_) if insecure => Err(format!(
                        "backend {name:?} would send its credentials over plain http without allowInsecure: true"
                    )),
                    Some(c) => {
                        let r = &c.secret_ref;
                        // Client-facing: names no Secret (the backend's status does).
                        secret_value(secrets, ns, &r.name, &r.key, CredentialPurpose::Provider)
                            .ok_or_else(|| {
                                format!(
                                    "backend {name:?} has no usable credentials; its InferenceBackend's Ready condition says what to fix"
                                )
                            })
                            .and_then(|value| {
                                let (header, text) = match ext.dialect {
                                    Dialect::Openai => (header::AUTHORIZATION, format!("Bearer {value}")),
                                    Dialect::Anthropic => (HeaderName::from_static("x-api-key"), value),
                                };
                                let mut v = HeaderValue::from_str(&text).map_err(|_| {
                                    format!(
                                        "backend {name:?} has credentials that are not a valid header value; its InferenceBackend's Ready condition says what to fix"
                                    )
                                })?;
                                v.set_sensitive(true);
                                Ok(Some((header, v)))
                            })
                    }
                };
                let client = match &ext.tls {
                    None => Ok(None),
                    Some(tls) => {
                        let r = &tls.ca_secret_ref;
                        // Client-facing: names no Secret (the backend's status does).
                        let unusable = || {
                            format!(
                                "backend {name:?} has no usable CA bundle; its InferenceBackend's Ready condition says what to fix"
                            )
                        };
                        secret_value(secrets, ns, &r.name, &r.key, CredentialPurpose::CaBundle)
                            .ok_or_else(unusable)
                            .and_then(|pem| {
                                self.private_cas.client(&pem).map_err(|e| {
                                    tracing::warn!(namespace = %ns, backend = %name, error = %e, "CA bundle unusable");
                                    unusable()
                                })
                            })
                            .map(Some)
                    }
                };
                let base = ext.base_url.trim_end_matches('/');
                let urls = match ext.dialect {
                    Dialect::Openai => Urls::parse(UrlStrings {
                        chat: format!("{base}/chat/completions"),
                        embeddings: format!("{base}/embeddings"),
                        completions: Some(format!("{base}/completions")),
                        // Hosted OpenAI has no way to count a chat prompt's tokens.
                        count_tokens: None,
                        responses: ib
                            .spec
                            .capabilities
                            .as_ref()
                            .is_some_and(|c| c.responses_api)
                            .then(|| format!("{base}/responses")),
                    }),
                    Dialect::Anthropic => {
                        let messages = if base.ends_with("/v1") {
                            format!("{base}/messages")
                        } else {
                            format!("{base}/v1/messages")
                        };
                        Urls::parse(UrlStrings {
                            embeddings: messages.clone(),
                            completions: None,
                            count_tokens: Some(format!("{messages}/count_tokens")),
                            responses: None,
                            chat: messages,
                        })
                    }
                }
                .map(Box::new)?;
                (
                    ext.dialect.as_str(),
                    ext.dialect,
                    ext.model.as_str(),
                    Kind::External { urls, auth, client },
                )
            }
            (None, Some(sh)) => {
                let prev_pods = match prev.map(|p| &p.kind) {
                    Some(Kind::SelfHosted { pods }) => pods.as_slice(),
                    _ => &[],
                };
                let ready_ips = ready
                    .get(&(ns.as_str(), name.as_str()))
                    .map_or(&[][..], Vec::as_slice);
                // Usable pods: warmed up (listed in the backend's status) and ready in an
                // EndpointSlice of its Service.
                let pods = ib
                    .status
                    .iter()
                    .flat_map(|s| &s.endpoints)
                    .filter(|e| {
                        let ip = e
                            .address
                            .rsplit_once(':')
                            .map_or(e.address.as_str(), |(ip, _)| ip);
                        ready_ips.contains(&ip)
                    })
                    .filter_map(|e| {
                        let a = &e.address;
                        let urls = Urls::parse(UrlStrings {
                            chat: format!("http://{a}/v1/chat/completions"),
                            embeddings: format!("http://{a}/v1/embeddings"),
                            completions: Some(format!("http://{a}/v1/completions")),
                            // vLLM's tokenizer endpoint is at the root, not under /v1.
                            count_tokens: (sh.runtime == Runtime::Vllm)
                                .then(|| format!("http://{a}/tokenize")),
                            // Pods' servers are reached through Chat Completions.
                            responses: None,
                        })?;
                        let in_flight = prev_pods
                            .iter()
                            .find(|p| p.address == e.address)
                            .map(|p| p.in_flight.clone())
                            .unwrap_or_default();
                        Some(Arc::new(Pod {
                            urls,
                            address: e.address.clone(),
                            in_flight,
                        }))
                    })
                    .collect();
                (
                    sh.runtime.as_str(),
                    Dialect::Openai,
                    sh.model.as_str(),
                    Kind::SelfHosted { pods },
                )
            }
            (None, None) => return None,
        };
        let limits = ib.spec.limits.as_ref();
        let limit = limits
            .and_then(|l| l.max_concurrency)
            .filter(|m| *m > 0)
            .map(|max| match prev.and_then(|p| p.limit.as_ref()) {
                // A changed limit takes effect for new requests; old permits drain.
                Some((old, sem)) if *old == max => (max, sem.clone()),
                _ => (max, Arc::new(Semaphore::new(max as usize))),
            });
        let counts_tokens = match &ib.spec.self_hosted {
            Some(sh) if ib.spec.external.is_none() => sh.runtime == Runtime::Vllm,
            _ => dialect == Dialect::Anthropic,
        };
        Some(Backend {
            name: state.name.clone(),
            provider,
            dialect,
            counts_tokens,
            model: model.into(),
            kind,
            timeout: limits
                .and_then(|l| l.timeout.as_ref())
                .and_then(|t| t.parse().ok())
                .unwrap_or(DEFAULT_TIMEOUT),
            price: ib.spec.pricing.as_ref().and_then(Price::from_spec),
            limit,
            state,
        })
    }
}

fn metrics_key(route: &Route, backend: &Arc<str>, provider: &'static str) -> MetricsKey {
    (
        route.namespace.clone(),
        route.name.clone(),
        backend.clone(),
        provider,
    )
}

/// `(namespace, service name)` → addresses ready in its EndpointSlices, in one pass.
fn ready_addresses(slices: &[Arc<EndpointSlice>]) -> HashMap<(&str, &str), Vec<&str>> {
    let mut ready: HashMap<(&str, &str), Vec<&str>> = HashMap::new();
    for s in slices {
        let (Some(ns), Some(service)) = (
            s.metadata.namespace.as_deref(),
            s.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("kubernetes.io/service-name")),
        ) else {
            continue;
        };
        let addresses = s
            .endpoints
            .iter()
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false))
            .flat_map(|e| e.addresses.iter().map(String::as_str));
        ready.entry((ns, service)).or_default().extend(addresses);
    }
    ready
}

/// The value of one key of a Secret, as text.
/// The value of `key` in the Secret `name`, if the Secret is labelled for `purpose`: a
/// Secret labelled for the other purpose, or not at all, is never used.
pub(super) fn secret_value(
    secrets: &Stores<Secret>,
    namespace: &str,
    name: &str,
    key: &str,
    purpose: CredentialPurpose,
) -> Option<String> {
    let secret = secrets.get(&ObjectRef::new(name).within(namespace))?;
    if CredentialPurpose::of_labels(secret.labels()) != Some(purpose) {
        return None;
    }
    if let Some(v) = secret.data.as_ref().and_then(|d| d.get(key)) {
        return String::from_utf8(v.0.clone())
            .ok()
            .map(|s| s.trim().to_owned());
    }
    secret
        .string_data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|s| s.trim().to_owned())
}
