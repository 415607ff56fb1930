//! Entry points for the criterion benchmarks (`benches/pick.rs`): the routing step of one
//! request at a given configuration size, before any I/O, and what it replaced.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store, store::Writer};
use kube::runtime::watcher;
use serde_json::json;

use super::cache::Caches;
use super::metrics::{AttemptMetrics, Metrics, Outcome};
use super::outlier::OutlierConfig;
use super::pick::{Balancer, Weighted};
use super::price::Price;
use super::snapshot::Snapshots;
use super::upstream::{self, Operation};
use crate::api::{InferenceBackend, ModelRoute};
use crate::gateway::translate::Usage;

/// The usage each benchmarked attempt counts.
const TOKENS: Usage = Usage {
    input: 10,
    cached: 0,
    output: 20,
};

/// `routes` routes `m0`…, each split 95/5 over an external backend and a self-hosted one
/// with four pods, in one namespace, as the gateway would see them.
pub struct Table {
    snapshots: Arc<Snapshots>,
    caches: Caches,
    metrics: Arc<Metrics>,
    _writers: (
        Writer<ModelRoute>,
        Writer<InferenceBackend>,
        Writer<Secret>,
        Writer<EndpointSlice>,
    ),
}

fn store<K>(objects: impl IntoIterator<Item = serde_json::Value>) -> (Store<K>, Writer<K>)
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + 'static,
{
    let (store, mut w) = reflector::store();
    for o in objects {
        let o: K = serde_json::from_value(o).expect("bench object");
        w.apply_watcher_event(&watcher::Event::Apply(o));
    }
    (store, w)
}

impl Table {
    pub fn new(routes: usize) -> Self {
        let meta = |name: String| json!({"name": name, "namespace": "bench", "creationTimestamp": "2024-01-01T00:00:00Z"});
        let (r, w1) = store::<ModelRoute>((0..routes).map(|i| {
            let split = json!([{"name": format!("ext{i}"), "weight": 95}, {"name": format!("gpu{i}"), "weight": 5}]);
            json!({"apiVersion": "switchyard.dev/v1alpha1", "kind": "ModelRoute", "metadata": meta(format!("m{i}")),
                   "spec": {"backends": split}, "status": {"weights": split}})
        }));
        let (b, w2) = store::<InferenceBackend>((0..routes).flat_map(|i| {
            let pods: Vec<_> = (0..4)
                .map(|p| json!({"pod": format!("gpu{i}-{p}"), "address": format!("10.{}.{}.{p}:8000", i / 250, i % 250)}))
                .collect();
            [
                json!({"apiVersion": "switchyard.dev/v1alpha1", "kind": "InferenceBackend", "metadata": meta(format!("ext{i}")),
                       "spec": {"external": {"dialect": "openai", "baseUrl": "http://127.0.0.1:9/v1", "model": "gpt",
                                "credentials": {"secretRef": {"name": "key", "key": "apiKey"}}},
                                "limits": {"maxConcurrency": 1000}}}),
                json!({"apiVersion": "switchyard.dev/v1alpha1", "kind": "InferenceBackend", "metadata": meta(format!("gpu{i}")),
                       "spec": {"selfHosted": {"runtime": "vllm", "model": "llama", "replicas": 4}},
                       "status": {"endpoints": pods}}),
            ]
        }));
        let (s, w3) = store::<Secret>([json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "key", "namespace": "bench", "labels": {"switchyard.dev/credential": "provider"}}, "stringData": {"apiKey": "sk-bench"}})]);
        let (e, w4) = store::<EndpointSlice>((0..routes).map(|i| {
            let eps: Vec<_> = (0..4)
                .map(|p| json!({"addresses": [format!("10.{}.{}.{p}", i / 250, i % 250)], "conditions": {"ready": true}}))
                .collect();
            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                   "metadata": {"name": format!("gpu{i}-x"), "namespace": "bench", "labels": {"kubernetes.io/service-name": format!("gpu{i}")}},
                   "addressType": "IPv4", "endpoints": eps})
        }));
        let caches = Caches {
            routes: r.into(),
            backends: b.into(),
            secrets: s.into(),
            slices: e.into(),
            tenants: reflector::store().0.into(),
        };
        let metrics = Arc::new(Metrics::register(&prometheus::Registry::new()).expect("metrics"));
        let snapshots = Arc::new(Snapshots::new(metrics.clone(), OutlierConfig::default()));
        snapshots.rebuild(&caches);
        Self {
            snapshots,
            caches,
            metrics,
            _writers: (w1, w2, w3, w4),
        }
    }

    /// What a request does before sending: load the snapshot, find the route, land by
    /// weight, resolve and admit the backend (permit, least-loaded pod), count the attempt
    /// through its handles. Returns the URL's length, for `black_box`.
    pub fn pick(&self, model: &str) -> usize {
        let snapshot = self.snapshots.load();
        let Some(route) = snapshot.route(model) else {
            return 0;
        };
        let Some(at) = Weighted.land(&route.landings) else {
            return 0;
        };
        match upstream::resolve(&route.backends[at], Operation::Chat, false) {
            Ok(t) => {
                let gauge = t.metrics.in_flight();
                t.metrics
                    .attempt("anonymous", Outcome::Success, "200", 0.01);
                t.metrics.tokens("anonymous", TOKENS, t.price);
                drop(gauge);
                t.url.path().len()
            }
            Err(_) => 0,
        }
    }

    /// How the route was found before the snapshot: a scan of every route in the store.
    pub fn scan(&self, model: &str) -> bool {
        crate::api::conflict::serving(self.caches.routes.state(), model).is_some()
    }

    /// How a successful attempt was counted before handles: every series looked up by its
    /// labels (four outcomes exported at 0, the count, the duration, in flight, tokens, cost).
    pub fn count_by_labels(&self, route: &str) {
        let m = &self.metrics;
        let base = ["bench", route, "ext0", "openai"];
        let with = |x: &'static str| [base[0], base[1], base[2], base[3], x];
        for o in ["success", "failover", "error", "unavailable"] {
            m.duration.with_label_values(&with(o));
        }
        let g = m.in_flight.with_label_values(&base);
        g.inc();
        m.requests
            .with_label_values(&[base[0], base[1], base[2], base[3], "success", "200"])
            .inc();
        m.duration.with_label_values(&with("success")).observe(0.01);
        m.tokens.with_label_values(&with("input")).inc_by(10);
        m.tokens.with_label_values(&with("output")).inc_by(20);
        m.cost.with_label_values(&base).inc_by(0.001);
        m.in_flight.with_label_values(&base).dec();
    }

    /// The same through resolved handles.
    pub fn count_by_handles(&self, handles: &AttemptMetrics) {
        let g = handles.in_flight();
        handles.attempt("anonymous", Outcome::Success, "200", 0.01);
        handles.tokens(
            "anonymous",
            TOKENS,
            Some(Price {
                input: 1.0,
                cached_input: 1.0,
                output: 2.0,
            }),
        );
        drop(g);
    }

    pub fn handles(&self) -> AttemptMetrics {
        AttemptMetrics::new(self.metrics.clone(), "bench", "m0", "ext0", "openai")
    }

    /// One full rebuild of the routing table.
    pub fn rebuild(&self) -> u64 {
        self.snapshots.rebuild(&self.caches)
    }
}
