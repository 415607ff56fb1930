//! The routing table requests read: an immutable snapshot of every served model → route →
//! backends (URL, credential header, ready pods, limits, metric handles), rebuilt from the
//! watched objects after watch events and swapped in atomically. A request does one
//! `load()` and a map lookup; it never reads a store, scans a list or builds a key string.
//!
//! What must outlive a rebuild (cool-downs, outlier state, in-flight counts, `maxConcurrency`
//! semaphores, landing sequences, metric handles) is held by `Arc` and carried over to the
//! next snapshot by key when it is built (see `build`).

mod build;
mod tenants;
#[cfg(test)]
mod tests;
mod watch;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use axum::http::{HeaderName, HeaderValue, Uri};
use reqwest::Url;

use super::client::Upstream;
use tokio::sync::Semaphore;

use super::auth::{Caller, Keys};
use super::balance::{InFlight, SmoothWeighted};
use super::metrics::{AttemptMetrics, BackendMetrics, Metrics};
use super::outlier::{Detector, OutlierConfig};
use super::price::Price;
use super::upstream::Operation;
use crate::api::Dialect;

pub use build::Builder;
pub use watch::run;

/// `(namespace, name)` of an object.
type Key = (String, String);

/// One generation of the routing table.
#[derive(Default)]
pub struct Snapshot {
    pub generation: u64,
    /// Model name → the route serving it (the oldest claim wins).
    models: HashMap<String, Arc<Route>>,
    /// Every serving route by `(namespace, name)`, to carry its state to the next generation.
    routes: HashMap<Key, Arc<Route>>,
    backends: HashMap<Key, Arc<Backend>>,
    /// Models with a split in effect, sorted, for `/v1/models`: name, creation time and
    /// the route's `(namespace, name)`, to list only what a caller may use.
    listed: Vec<Listed>,
    /// The tenants' keys, as digests.
    pub keys: Keys,
}

/// A model in `/v1/models`.
pub struct Listed {
    pub model: String,
    pub created: i64,
    pub route: Key,
}

impl Snapshot {
    /// The route serving `model`.
    pub fn route(&self, model: &str) -> Option<&Arc<Route>> {
        self.models.get(model)
    }

    /// Models of routes with a split in effect that `caller` may use, sorted.
    pub fn listed<'a>(&'a self, caller: &'a Caller) -> impl Iterator<Item = &'a Listed> {
        self.listed
            .iter()
            .filter(|l| caller.may_use(&l.route.0, &l.route.1))
    }

    /// The models `caller` may use, joined for an error message ("none" when none).
    pub fn served(&self, caller: &Caller) -> String {
        let names: Vec<&str> = self.listed(caller).map(|l| l.model.as_str()).collect();
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    }

    pub fn backends(&self) -> impl Iterator<Item = &Arc<Backend>> {
        self.backends.values()
    }
}

/// A ModelRoute as requests use it.
pub struct Route {
    pub namespace: String,
    pub name: String,
    /// The backends the route names: the split first (position `i` of `weights` is
    /// `backends[i]`), then the fallback tiers, then mirror-only backends, then the backends a
    /// migration moves to that carry no traffic yet (for pinned evaluation replays).
    pub backends: Vec<RouteBackend>,
    pub weights: Vec<i32>,
    /// Fallback tiers in order, as positions in `backends`.
    pub fallback: Vec<usize>,
    pub mirror: Option<Mirror>,
    /// The route's smooth weighted round-robin, kept while its split stays the same.
    pub landings: Arc<Mutex<SmoothWeighted>>,
}

pub struct Mirror {
    pub percent: u64,
    /// Positions in `Route::backends`.
    pub backends: Vec<usize>,
}

/// One backend as a route names it.
pub struct RouteBackend {
    pub name: Arc<str>,
    /// The backend, or why no such backend can serve ("does not exist", ...).
    pub backend: Result<Arc<Backend>, &'static str>,
    /// The attempt series of (route, backend), created on first use.
    pub metrics: Arc<AttemptMetrics>,
}

/// An InferenceBackend, resolved.
pub struct Backend {
    pub name: Arc<str>,
    /// Dialect or runtime, for the `provider` label.
    pub provider: &'static str,
    pub dialect: Dialect,
    pub model: Arc<str>,
    pub kind: Kind,
    /// Time to the first byte, and the longest silence within an answer.
    pub timeout: Duration,
    pub price: Option<Price>,
    /// `maxConcurrency` and its permits (a changed limit gets a new semaphore).
    pub limit: Option<(i32, Arc<Semaphore>)>,
    /// Whether the backend counts tokens itself (Anthropic, vLLM); the gateway estimates
    /// for the others.
    pub counts_tokens: bool,
    pub state: Arc<BackendState>,
}

pub enum Kind {
    External {
        urls: Box<Urls>,
        /// The credential header ready to send (value marked sensitive), or why it cannot
        /// be sent (the Secret or key is missing).
        auth: Result<Option<(HeaderName, HeaderValue)>, String>,
        /// The client of a backend behind a private CA (its own roots), or why its CA
        /// bundle cannot be used; `Ok(None)`: the shared client, system roots.
        client: Result<Option<Upstream>, String>,
    },
    /// Pods ready in an EndpointSlice of the backend's Service and warmed up.
    SelfHosted { pods: Vec<Arc<Pod>> },
}

/// Where one operation is sent, parsed once here: parsing per request (IDNA, percent
/// encoding) cost a few percent of a proxied request's CPU.
pub struct Urls {
    pub chat: Uri,
    pub embeddings: Uri,
    /// The backend's own Responses API, when it has one (`capabilities.responsesApi`);
    /// otherwise Responses requests go to `chat`, translated.
    pub responses: Option<Uri>,
    /// Legacy text completions, on OpenAI-dialect backends.
    pub completions: Option<Uri>,
    /// Where the backend counts tokens, if it can: Anthropic's `count_tokens`, vLLM's
    /// `/tokenize`.
    pub count_tokens: Option<Uri>,
}

/// The URLs of one backend (or pod), before parsing.
pub struct UrlStrings {
    pub chat: String,
    pub embeddings: String,
    pub completions: Option<String>,
    pub count_tokens: Option<String>,
    /// The backend's own Responses API (`capabilities.responsesApi`).
    pub responses: Option<String>,
}

impl Urls {
    /// `None` if any is not a URL (admission lets only http(s) URLs with a host in).
    /// Parsed as a WHATWG URL first, so what is sent is the normalised form (IDNA host,
    /// percent-encoded path), then kept as the `Uri` the client sends as is.
    pub fn parse(s: UrlStrings) -> Option<Self> {
        let uri = |s: &str| Uri::try_from(Url::parse(s).ok()?.as_str()).ok();
        let optional = |s: Option<String>| match s {
            None => Some(None),
            Some(s) => uri(&s).map(Some),
        };
        Some(Self {
            chat: uri(&s.chat)?,
            embeddings: uri(&s.embeddings)?,
            completions: optional(s.completions)?,
            count_tokens: optional(s.count_tokens)?,
            responses: optional(s.responses)?,
        })
    }

    /// Where `op` is sent; `None` when the backend has no such endpoint.
    pub fn get(&self, op: Operation) -> Option<&Uri> {
        match op {
            Operation::Chat => Some(&self.chat),
            Operation::Embeddings => Some(&self.embeddings),
            Operation::Completions => self.completions.as_ref(),
            Operation::CountTokens => self.count_tokens.as_ref(),
            Operation::Responses => Some(self.responses.as_ref().unwrap_or(&self.chat)),
        }
    }
}

pub struct Pod {
    pub address: String,
    pub urls: Urls,
    /// Kept across rebuilds while the address is listed.
    pub in_flight: Arc<InFlight>,
}

impl AsRef<InFlight> for Arc<Pod> {
    fn as_ref(&self) -> &InFlight {
        &self.in_flight
    }
}

/// What a backend remembers across snapshots.
pub struct BackendState {
    pub namespace: String,
    pub name: Arc<str>,
    /// A 429's Retry-After: no attempts until then.
    cooldown: Mutex<Option<Instant>>,
    pub outliers: Mutex<Detector>,
    pub metrics: BackendMetrics,
}

impl BackendState {
    pub fn new(metrics: &Arc<Metrics>, cfg: OutlierConfig, namespace: &str, name: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            name: name.into(),
            cooldown: Mutex::new(None),
            outliers: Mutex::new(Detector::new(cfg)),
            metrics: BackendMetrics::new(metrics.clone(), namespace, name),
        }
    }

    /// Honours a 429's Retry-After: the backend gets no attempts until then.
    pub fn cool_down(&self, until: Instant) {
        *self.cooldown.lock().unwrap_or_else(|e| e.into_inner()) = Some(until);
    }

    /// How long the backend is still cooling down, if it is.
    pub fn cooling(&self) -> Option<Duration> {
        let mut c = self.cooldown.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        match *c {
            Some(until) if until > now => Some(until - now),
            Some(_) => {
                *c = None;
                None
            }
            None => None,
        }
    }
}

/// The snapshot in use, and the builder of the next one.
pub struct Snapshots {
    current: ArcSwap<Snapshot>,
    builder: Mutex<Builder>,
    metrics: Arc<Metrics>,
}

impl Snapshots {
    /// Starts with an empty table (generation 0): nothing is served until the first build.
    pub fn new(metrics: Arc<Metrics>, outliers: OutlierConfig) -> Self {
        Self {
            current: ArcSwap::from_pointee(Snapshot::default()),
            builder: Mutex::new(Builder::new(metrics.clone(), outliers)),
            metrics,
        }
    }

    /// The snapshot in use: one atomic load.
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Builds the next generation from the caches and swaps it in; returns its generation.
    pub fn rebuild(&self, caches: &super::cache::Caches) -> u64 {
        let started = Instant::now();
        let mut builder = self.builder.lock().unwrap_or_else(|e| e.into_inner());
        let next = builder.build(caches, &self.current.load());
        let generation = next.generation;
        self.current.store(Arc::new(next));
        self.metrics
            .config_rebuild
            .observe(started.elapsed().as_secs_f64());
        self.metrics.config_generation.set(generation as i64);
        generation
    }
}
