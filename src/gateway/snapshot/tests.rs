//! The routing snapshot: what a build resolves from the watched objects, what survives a
//! rebuild, that requests read nothing else, and how watch events reach it.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::watch::COALESCE;
use super::{Kind, Snapshot, Snapshots};
use crate::api::{InferenceBackend, ModelRoute};
use crate::gateway::auth::Caller;
use crate::gateway::cache::Caches;
use crate::gateway::metrics::Metrics;
use crate::gateway::outlier::OutlierConfig;
use crate::gateway::tests::{
    Harness, NS, Upstream, World, config, external, named_route, obj, openai_answer, route,
};
use crate::serve::Readiness;

fn ok() -> impl Fn() -> crate::gateway::tests::Reply + Send + Sync + 'static {
    || openai_answer("ok")
}

fn snap(h: &Harness) -> Arc<Snapshot> {
    h.gw.snapshots.load()
}

fn apply<K: kube::Resource<DynamicType = ()> + Clone>(w: &mut reflector::store::Writer<K>, o: K) {
    w.apply_watcher_event(&watcher::Event::Apply(o));
}

fn pods(s: &Snapshot, backend: &str) -> Vec<String> {
    let b = s
        .backends
        .get(&(NS.to_owned(), backend.to_owned()))
        .expect("backend");
    match &b.kind {
        Kind::SelfHosted { pods } => pods.iter().map(|p| p.address.clone()).collect(),
        Kind::External { .. } => panic!("external"),
    }
}

#[tokio::test]
async fn the_older_of_two_routes_claiming_a_model_serves_and_the_served_list_is_sorted() {
    let up = Upstream::always(ok()).await;
    let mut older = named_route("chat-v2", "2023-06-01T00:00:00Z", &[("b", 1)], &[]);
    older.spec.model = Some("chat".into());
    let mut unsplit = named_route("alpha", "2024-01-01T00:00:00Z", &[("b", 1)], &[]);
    unsplit.status = None;
    let mut world = World::new(
        route(&[("b", 1)], &[]),
        vec![external("b", "openai", &up, json!({}))],
    );
    world.more_routes = vec![
        older,
        unsplit,
        named_route("zeta", "2024-01-01T00:00:00Z", &[("b", 1)], &[]),
    ];
    let h = Harness::new(world, config());
    let s = snap(&h);
    assert_eq!(
        s.route("chat").unwrap().name,
        "chat-v2",
        "the older claim wins"
    );
    assert_eq!(s.route("zeta").unwrap().name, "zeta");
    assert!(s.route("chat-v2").is_none());
    assert_eq!(
        s.listed(&Caller::anonymous())
            .map(|l| l.model.as_str())
            .collect::<Vec<_>>(),
        ["chat", "zeta"],
        "only models with a split in effect are listed"
    );
    assert_eq!(s.served(&Caller::anonymous()), "chat, zeta");
    assert!(
        s.route("alpha").is_some(),
        "served, with no split yet (503)"
    );
}

fn self_hosted_with(endpoints: &[&str]) -> InferenceBackend {
    let eps: Vec<Value> = endpoints
        .iter()
        .enumerate()
        .map(|(i, a)| json!({"pod": format!("llama-{i}"), "address": a}))
        .collect();
    obj(
        json!({"apiVersion": "switchyard.dev/v1alpha1", "kind": "InferenceBackend",
        "metadata": {"name": "llama", "namespace": NS},
        "spec": {"selfHosted": {"runtime": "vllm", "model": "llama", "replicas": 3}},
        "status": {"endpoints": eps}}),
    )
}

fn slice(ns: &str, name: &str, service: &str, ready: &[(&str, bool)]) -> EndpointSlice {
    let eps: Vec<Value> = ready
        .iter()
        .map(|(ip, r)| json!({"addresses": [ip], "conditions": {"ready": r}}))
        .collect();
    obj(
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": ns, "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4", "endpoints": eps}),
    )
}

#[tokio::test]
async fn pods_are_the_warmed_up_ones_ready_in_a_slice_of_the_backends_service() {
    let warmed = ["10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000"];
    let mut world = World::new(route(&[("llama", 1)], &[]), vec![self_hosted_with(&warmed)]);
    world.slices = vec![
        slice(
            NS,
            "llama-a",
            "llama",
            &[("10.0.0.1", true), ("10.0.0.2", false)],
        ),
        // Ready but not warmed up.
        slice(NS, "llama-b", "llama", &[("10.0.0.4", true)]),
        // Ready, warmed-up address, but another Service or namespace.
        slice(NS, "other-a", "other", &[("10.0.0.3", true)]),
        slice("elsewhere", "llama-a", "llama", &[("10.0.0.3", true)]),
    ];
    let mut h = Harness::new(world, config());
    let s1 = snap(&h);
    assert_eq!(pods(&s1, "llama"), ["10.0.0.1:8000"]);

    apply(
        &mut h.writers.3,
        slice(
            NS,
            "llama-a",
            "llama",
            &[("10.0.0.1", true), ("10.0.0.2", true)],
        ),
    );
    h.rebuild();
    let s2 = snap(&h);
    assert_eq!(pods(&s2, "llama"), ["10.0.0.1:8000", "10.0.0.2:8000"]);
    let pod = |s: &Snapshot| match &s.backends[&(NS.to_owned(), "llama".to_owned())].kind {
        Kind::SelfHosted { pods } => pods[0].in_flight.clone(),
        Kind::External { .. } => unreachable!(),
    };
    assert!(
        Arc::ptr_eq(&pod(&s1), &pod(&s2)),
        "a pod still listed keeps its in-flight count"
    );
}

#[tokio::test]
async fn a_secret_that_appears_or_changes_reaches_the_credential_header_on_rebuild() {
    let up = Upstream::always(ok()).await;
    let creds = json!({"credentials": {"secretRef": {"name": "key", "key": "apiKey"}}});
    let mut b = external("b", "openai", &up, json!({}));
    b.spec.external.as_mut().unwrap().credentials =
        serde_json::from_value(creds["credentials"].clone()).unwrap();
    let mut h = Harness::new(World::new(route(&[("b", 1)], &[]), vec![b]), config());
    let auth = |h: &Harness| match &snap(h).backends[&(NS.to_owned(), "b".to_owned())].kind {
        Kind::External { auth, .. } => auth.clone().map(|a| {
            a.map(|(n, v)| {
                (
                    n.to_string(),
                    v.to_str().unwrap().to_owned(),
                    v.is_sensitive(),
                )
            })
        }),
        Kind::SelfHosted { .. } => unreachable!(),
    };
    let missing = auth(&h).unwrap_err();
    // Callers see this: it names the backend, never the Secret.
    assert!(
        missing.contains("no usable credentials") && !missing.contains("\"key\""),
        "{missing}"
    );
    assert_eq!(h.chat().await.status, 503, "no credentials: unavailable");

    let labelled = |value: &str, purpose: Option<&str>| -> Secret {
        let labels = match purpose {
            Some(p) => json!({"switchyard.dev/credential": p}),
            None => json!({}),
        };
        obj(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "key", "namespace": NS, "labels": labels}, "stringData": {"apiKey": value}}))
    };
    let secret = |value: &str| labelled(value, Some("provider"));
    // Only a Secret labelled for provider credentials is ever sent upstream: not one without
    // the label, and not a tenant's key.
    for other in [None, Some("tenant-key"), Some("Provider")] {
        apply(&mut h.writers.2, labelled("sk-0", other));
        h.rebuild();
        assert!(auth(&h).is_err(), "{other:?}");
        assert_eq!(h.chat().await.status, 503, "{other:?}");
    }
    apply(&mut h.writers.2, secret(" sk-1\n"));
    h.rebuild();
    assert_eq!(
        auth(&h),
        Ok(Some((
            "authorization".to_owned(),
            "Bearer sk-1".to_owned(),
            true
        ))),
        "trimmed, ready to send, and marked sensitive"
    );
    assert_eq!(h.chat().await.status, 200);
    apply(&mut h.writers.2, secret("sk-2"));
    h.rebuild();
    assert_eq!(
        auth(&h),
        Ok(Some((
            "authorization".to_owned(),
            "Bearer sk-2".to_owned(),
            true
        )))
    );
}

#[tokio::test]
async fn backend_and_route_state_outlive_a_rebuild_and_a_new_split_restarts_its_sequence() {
    let up = Upstream::always(ok()).await;
    let limited = |max: i32| {
        external(
            "a",
            "openai",
            &up,
            json!({"limits": {"maxConcurrency": max}}),
        )
    };
    let mut h = Harness::new(
        World::new(
            route(&[("a", 1), ("b", 1)], &[]),
            vec![limited(2), external("b", "openai", &up, json!({}))],
        ),
        config(),
    );
    assert_eq!(h.chat().await.status, 200);
    let s1 = snap(&h);
    h.rebuild();
    let s2 = snap(&h);
    assert_eq!(s2.generation, s1.generation + 1);
    let (r1, r2) = (s1.route("chat").unwrap(), s2.route("chat").unwrap());
    assert!(
        Arc::ptr_eq(&r1.landings, &r2.landings),
        "same split, same sequence"
    );
    assert!(Arc::ptr_eq(
        &r1.backends[0].metrics,
        &r2.backends[0].metrics
    ));
    let a = |r: &super::Route| r.backends[0].backend.clone().unwrap();
    assert!(
        Arc::ptr_eq(&a(r1).state, &a(r2).state),
        "cool-down and outliers carried"
    );
    assert!(Arc::ptr_eq(
        &a(r1).limit.clone().unwrap().1,
        &a(r2).limit.clone().unwrap().1
    ));

    apply(&mut h.writers.0, route(&[("a", 1), ("b", 3)], &[]));
    apply(&mut h.writers.1, limited(5));
    h.rebuild();
    let s3 = snap(&h);
    let r3 = s3.route("chat").unwrap();
    assert_eq!(r3.weights, [1, 3]);
    assert!(
        !Arc::ptr_eq(&r1.landings, &r3.landings),
        "a new split starts afresh"
    );
    assert!(Arc::ptr_eq(&a(r1).state, &a(r3).state));
    let (max, sem) = a(r3).limit.clone().unwrap();
    assert_eq!(
        (max, sem.available_permits()),
        (5, 5),
        "a changed limit applies"
    );
}

#[tokio::test]
async fn requests_read_only_the_snapshot_whatever_the_number_of_routes() {
    let up = Upstream::always(ok()).await;
    let mut world = World::new(
        route(&[("b", 1)], &[]),
        vec![external("b", "openai", &up, json!({}))],
    );
    world.more_routes = (0..10_000)
        .map(|i| named_route(&format!("m{i}"), "2024-01-01T00:00:00Z", &[("b", 1)], &[]))
        .collect();
    let mut h = Harness::new(world, config());
    assert_eq!(snap(&h).route("m9999").unwrap().backends.len(), 1);
    // Empty every cache without rebuilding: a request that read a store would not find its
    // route, backend or pods.
    h.writers.0.apply_watcher_event(&watcher::Event::Init);
    h.writers.0.apply_watcher_event(&watcher::Event::InitDone);
    h.writers.1.apply_watcher_event(&watcher::Event::Init);
    h.writers.1.apply_watcher_event(&watcher::Event::InitDone);
    assert!(h.caches.routes.state().is_empty() && h.caches.backends.state().is_empty());
    let a = h.chat().await;
    assert_eq!(
        (a.status, a.backend.as_deref()),
        (200, Some("b")),
        "{}",
        a.body
    );
    h.rebuild();
    assert_eq!(
        h.chat().await.status,
        404,
        "gone once the snapshot is rebuilt"
    );
}

#[tokio::test]
async fn idle_routes_export_nothing_and_a_deleted_routes_series_are_removed() {
    let up = Upstream::always(ok()).await;
    let mut world = World::new(
        route(&[("b", 1)], &[]),
        vec![external("b", "openai", &up, json!({}))],
    );
    world.more_routes = vec![named_route(
        "idle",
        "2024-01-01T00:00:00Z",
        &[("b", 1)],
        &[],
    )];
    let mut h = Harness::new(world, config());
    assert_eq!(h.chat().await.status, 200);
    let count = |h: &Harness, route: &str| {
        h.series(
            "switchyard_request_duration_seconds_count",
            &[("route", route), ("outcome", "success")],
        )
    };
    assert_eq!(count(&h, "chat"), Some(1.0));
    assert_eq!(
        count(&h, "idle"),
        None,
        "a route without traffic has no series"
    );
    assert_eq!(
        h.series("switchyard_requests_total", &[("route", "idle")]),
        None
    );

    h.writers
        .0
        .apply_watcher_event(&watcher::Event::Delete(route(&[("b", 1)], &[])));
    h.rebuild();
    // Retired at this rebuild; removed at the next, once no request can hold it.
    h.rebuild();
    assert_eq!(count(&h, "chat"), None);
    assert_eq!(
        h.series("switchyard_requests_total", &[("route", "chat")]),
        None
    );
    assert_eq!(
        h.series("switchyard_tokens_total", &[("route", "chat")]),
        None
    );
}

/// A store whose first list is complete, as a reflector's is after its initial list.
fn listed<K>(objects: Vec<K>) -> (Store<K>, reflector::store::Writer<K>)
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    let (store, mut w) = reflector::store();
    w.apply_watcher_event(&watcher::Event::Init);
    for o in objects {
        w.apply_watcher_event(&watcher::Event::InitApply(o));
    }
    w.apply_watcher_event(&watcher::Event::InitDone);
    (store, w)
}

async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("never: {what}");
}

#[tokio::test]
async fn a_burst_of_watch_events_is_one_rebuild_and_a_weight_change_reaches_requests() {
    let (routes, mut rw) = listed::<ModelRoute>(vec![route(&[("a", 1)], &[])]);
    let (backends, _bw) = listed::<InferenceBackend>(vec![]);
    let (secrets, _sw) = listed::<Secret>(vec![]);
    let (slices, _lw) = listed::<EndpointSlice>(vec![]);
    let caches = Caches {
        routes: routes.into(),
        backends: backends.into(),
        secrets: secrets.into(),
        slices: slices.into(),
        tenants: listed::<crate::api::Tenant>(vec![]).0.into(),
    };
    let registry = prometheus::Registry::new();
    let metrics = Arc::new(Metrics::register(&registry).unwrap());
    let snapshots = Arc::new(Snapshots::new(metrics.clone(), OutlierConfig::default()));
    let (events, ready) = (Arc::new(Notify::new()), Readiness::default());
    assert!(
        snapshots.load().route("chat").is_none(),
        "nothing before the first build"
    );
    tokio::spawn(super::run(
        snapshots.clone(),
        caches,
        events.clone(),
        ready.clone(),
    ));
    until("ready", || ready.get()).await;
    let first = snapshots.load().generation;
    assert_eq!(snapshots.load().route("chat").unwrap().weights, [1]);

    // Settling: many events before the task runs again.
    rw.apply_watcher_event(&watcher::Event::Apply(route(&[("a", 1), ("b", 9)], &[])));
    for _ in 0..500 {
        events.notify_one();
    }
    until("the weight change is served", || {
        snapshots.load().route("chat").unwrap().weights == [1, 9]
    })
    .await;
    tokio::time::sleep(COALESCE * 4).await;
    // The first event starts a rebuild; all the others together make at most one more.
    let last = snapshots.load().generation;
    assert!(
        (first + 1..=first + 2).contains(&last),
        "500 events, {} rebuilds",
        last - first
    );
    assert_eq!(metrics.config_generation.get(), last as i64);
    assert_eq!(metrics.config_rebuild.get_sample_count(), last);
}
