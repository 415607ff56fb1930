//! Start-up, leader election and the two controllers with their watches.

use std::sync::Arc;

use futures::{FutureExt, StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{self, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};

use super::backend::warmup::Warmer;
use super::leadership::Leadership;
use super::metrics::Metrics;
use anyhow::Context as _;

use super::{
    Args, CONTROLLER_NAME, Config, Context, Scope, backoff, conflict, error_policy_backend,
    error_policy_route, error_policy_tenant, leader, reconcile_backend, reconcile_route,
    reconcile_tenant, usage,
};
use crate::api::{CredentialPurpose, InferenceBackend, ModelRoute, Tenant};
use crate::controller::BACKEND_LABEL;
use crate::serve::{self, Readiness};

type Listed = tokio::sync::watch::Sender<bool>;
type Shutdown = futures::future::Shared<futures::future::BoxFuture<'static, ()>>;

pub async fn run(args: Args) -> anyhow::Result<()> {
    let lease = leader::Config::from_args(&args)?;
    let kube_config = kube::Config::infer().await?;
    let client = Client::try_from(kube_config.clone())?;
    let registry = prometheus::Registry::new();
    let metrics = Metrics::register(&registry)?;
    let identity = args.identity.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        format!("{}-{}", host.trim(), std::process::id())
    });
    let shared = Shared {
        client: client.clone(),
        config: Config {
            unschedulable_grace: args.unschedulable_grace,
            prometheus_url: args.prometheus_url.clone(),
            scrape_interval: args.scrape_interval,
            instance_id: args.instance_id.clone(),
            gateway_url: args.gateway_url.clone(),
            service_account: match args.service_account.split_once('/') {
                Some((ns, name)) => (ns.to_owned(), name.to_owned()),
                None => (args.lease_namespace.clone(), args.service_account.clone()),
            },
        },
        prometheus: args
            .prometheus_url
            .as_deref()
            .map(crate::analysis::Prometheus::new)
            .transpose()?,
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: CONTROLLER_NAME.into(),
                instance: Some(identity.clone()),
            },
        ),
        warmer: Warmer::new(metrics.warmup_requests.clone()),
        metrics,
    };
    let scopes: Vec<Scoped> = Scope::from_namespaces(&args.namespace)
        .into_iter()
        .map(|scope| Scoped::new(scope, &shared))
        .collect();
    let leader_metric = shared.metrics.leader.clone();
    let decisions = shared.metrics.decisions.clone();

    let ready = Readiness::default();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let shutdown: Shutdown = {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
        .boxed()
        .shared()
    };
    {
        let ready = ready.clone();
        let stop_tx = stop_tx.clone();
        tokio::spawn(async move {
            serve::shutdown_signal().await;
            ready.set(false);
            let _ = stop_tx.send(true);
        });
    }
    let ops = serve::ops_router(registry, ready.clone());
    let http = tokio::spawn(serve::serve(args.metrics_addr, ops, shutdown.clone()));

    // Probe the API once so a missing CRD or RBAC rule fails start-up with a clear error.
    let one = kube::api::ListParams::default().limit(1);
    for s in &scopes {
        s.scope
            .api::<InferenceBackend>(&client)
            .list(&one)
            .await
            .with_context(|| format!("listing InferenceBackends in {}", s.scope))?;
        s.scope
            .api::<ModelRoute>(&client)
            .list(&one)
            .await
            .with_context(|| format!("listing ModelRoutes in {}", s.scope))?;
    }
    // A standby is healthy and ready: it is doing its job, which is to wait.
    ready.set(true);

    // Its own thread, runtime and client: a busy controller must not starve its renewals.
    let mut leadership = Leadership::start(kube_config, lease.with_identity(identity))?;
    tokio::select! {
        acquired = leadership.acquired() => acquired?,
        () = shutdown.clone() => {
            leadership.release().await;
            http.await??;
            return Ok(());
        }
    }
    leader_metric.set(1);

    // Concurrency is per scope: each namespace's reconciles queue on their own.
    let controllers = futures::future::join_all(scopes.into_iter().map(|s| {
        run_controllers(
            client.clone(),
            s,
            args.max_concurrent_reconciles,
            shutdown.clone(),
        )
    }));
    // Whichever ends first ends the other: losing the lease drops the controllers (and
    // every reconcile in flight) here, before a standby can have taken over.
    let lost = tokio::select! {
        _ = controllers => None,
        lost = leadership.lost() => Some(lost),
    };
    leader_metric.set(0);
    // Decisions are the leader's to export; another replica leads from here on.
    decisions.clear();
    match lost {
        None => {
            leadership.release().await;
            http.await??;
            tracing::info!("controller stopped");
            Ok(())
        }
        Some(why) => {
            tracing::error!(error = %why, "lost leadership; stopped reconciling, exiting");
            ready.set(false);
            let _ = stop_tx.send(true);
            let _ = http.await;
            Err(why)
        }
    }
}

/// Placed after `reflect`: raises the flag once the store has applied its first full list.
fn flag_when_listed<K>(tx: Listed) -> impl FnMut(&watcher::Event<K>) {
    move |event| {
        if matches!(event, watcher::Event::InitDone) {
            tx.send_replace(true);
        }
    }
}

/// Placed after `reflect`: keeps the route index in step with the route store, and drops
/// the decision series of routes that are gone (deleted, or no longer this instance's).
fn index_routes(ctx: Arc<Context>, scope: Scope) -> impl FnMut(&watcher::Event<ModelRoute>) {
    move |event| {
        let mut index = ctx.indexes.routes.write().expect("route index lock");
        let key = |mr: &ModelRoute| (mr.namespace().unwrap_or_default(), mr.name_any());
        match event {
            watcher::Event::Init => index.begin(),
            watcher::Event::InitApply(mr) => {
                let (ns, name) = key(mr);
                index.listing().upsert(&ns, &name, usage::index_keys(mr));
            }
            watcher::Event::InitDone => {
                index.done();
                // A relist: routes deleted while the watch was down get no Delete event.
                ctx.metrics.decisions.retain(|ns, name| {
                    let ours = match &scope {
                        Scope::Cluster => true,
                        Scope::Namespace(n) => n == ns,
                    };
                    !ours || ctx.routes.get(&ObjectRef::new(name).within(ns)).is_some()
                });
            }
            watcher::Event::Apply(mr) => {
                let (ns, name) = key(mr);
                index.live.upsert(&ns, &name, usage::index_keys(mr));
            }
            watcher::Event::Delete(mr) => {
                let (ns, name) = key(mr);
                index.live.remove(&ns, &name);
                ctx.metrics.decisions.forget(&ns, &name);
            }
        }
    }
}

/// Placed after `reflect`: keeps the set of backends being deleted in step with the store.
fn index_deleting(ctx: Arc<Context>) -> impl FnMut(&watcher::Event<InferenceBackend>) {
    move |event| {
        let mut index = ctx.indexes.deleting.write().expect("deletion index lock");
        let key = |ib: &InferenceBackend| (ib.namespace().unwrap_or_default(), ib.name_any());
        match event {
            watcher::Event::Init => index.begin(),
            watcher::Event::InitApply(ib) => {
                let (ns, name) = key(ib);
                let deleting = ib.metadata.deletion_timestamp.is_some();
                index.listing().set(&ns, &name, deleting);
            }
            watcher::Event::InitDone => index.done(),
            watcher::Event::Apply(ib) => {
                let (ns, name) = key(ib);
                let deleting = ib.metadata.deletion_timestamp.is_some();
                index.live.set(&ns, &name, deleting);
            }
            watcher::Event::Delete(ib) => {
                let (ns, name) = key(ib);
                index.live.set(&ns, &name, false);
            }
        }
    }
}

/// What every scope's controllers share: one client, one set of metrics, one Recorder.
struct Shared {
    client: Client,
    config: Config,
    prometheus: Option<crate::analysis::Prometheus>,
    recorder: Recorder,
    warmer: Warmer,
    metrics: Metrics,
}

/// One scope's context, with the writers and flags of the stores in it.
struct Scoped {
    scope: Scope,
    ctx: Arc<Context>,
    writers: (Writer<InferenceBackend>, Writer<ModelRoute>),
    listed: (Listed, Listed),
}

impl Scoped {
    fn new(scope: Scope, shared: &Shared) -> Self {
        let (backend_store, backend_writer) = reflector::store();
        let (route_store, route_writer) = reflector::store();
        let (backends_listed_tx, backends_listed) = tokio::sync::watch::channel(false);
        let (routes_listed_tx, routes_listed) = tokio::sync::watch::channel(false);
        let ctx = Arc::new(Context {
            client: shared.client.clone(),
            config: shared.config.clone(),
            scrape_intervals: Default::default(),
            tokens: Default::default(),
            backends: backend_store,
            routes: route_store,
            indexes: Default::default(),
            backends_listed,
            routes_listed,
            prometheus: shared.prometheus.clone(),
            recorder: shared.recorder.clone(),
            warmer: shared.warmer.clone(),
            metrics: shared.metrics.clone(),
            retries: backoff::Retries::default(),
            written: Default::default(),
        });
        Self {
            scope,
            ctx,
            writers: (backend_writer, route_writer),
            listed: (backends_listed_tx, routes_listed_tx),
        }
    }
}

async fn run_controllers(client: Client, scoped: Scoped, concurrency: u16, shutdown: Shutdown) {
    let Scoped {
        scope,
        ctx,
        writers: (backend_writer, route_writer),
        listed: (backends_listed, routes_listed),
    } = scoped;
    let backends: Api<InferenceBackend> = scope.api(&client);
    let routes: Api<ModelRoute> = scope.api(&client);
    // Only this instance's objects (see `instance_selector`), in every watch of the three kinds.
    let mine = watcher::Config::default()
        .labels(&super::instance_selector(ctx.config.instance_id.as_deref()));
    // The stores in Context are fed by the controllers' own watches.
    let backend_stream = watcher(backends.clone(), mine.clone())
        .default_backoff()
        .modify(crate::slim::slim)
        .reflect(backend_writer)
        .inspect_ok(index_deleting(ctx.clone()))
        .inspect_ok(flag_when_listed(backends_listed))
        .applied_objects();
    let route_stream = watcher(routes.clone(), mine.clone())
        .default_backoff()
        .modify(crate::slim::slim)
        .reflect(route_writer)
        .inspect_ok(index_routes(ctx.clone(), scope.clone()))
        .inspect_ok(flag_when_listed(routes_listed))
        .applied_objects();

    // Only what the controller made: its Deployments and pods carry the backend label.
    let ours = watcher::Config::default().labels(BACKEND_LABEL);
    // Only the metadata of Secrets labelled as credentials is watched: the controller needs
    // to know such a Secret changed, and reads the one it needs; no other Secret is listed,
    // watched or held in memory.
    let credential_events = || {
        watcher(
            scope.api::<PartialObjectMeta<Secret>>(&client),
            watcher::Config::default().labels(&CredentialPurpose::selector()),
        )
        .default_backoff()
        .touched_objects()
    };
    let secret_events = credential_events();
    let backend_ctl = {
        let for_secrets = ctx.clone();
        let for_routes = ctx.clone();
        Controller::for_stream(backend_stream, ctx.backends.clone())
            .with_config(controller::Config::default().concurrency(concurrency))
            .owns(scope.api::<Deployment>(&client), ours.clone())
            .watches(scope.api::<Pod>(&client), ours, |pod| {
                let name = pod.labels().get(BACKEND_LABEL)?.clone();
                Some(ObjectRef::new(&name).within(&pod.namespace()?))
            })
            .watches_stream(secret_events, move |secret| {
                let name = secret.name_any();
                for_secrets
                    .backends
                    .state()
                    .into_iter()
                    .filter(|ib| {
                        ib.metadata.namespace == secret.metadata.namespace
                            && super::referenced_secrets(&ib.spec).contains(&name.as_str())
                    })
                    .map(|ib| ObjectRef::from_obj(&*ib))
                    .collect::<Vec<_>>()
            })
            // A route taking up or letting go of a backend changes whether it may be deleted.
            .watches(routes.clone(), mine.clone(), move |mr| {
                let ns = mr.namespace().unwrap_or_default();
                usage::backends_to_recheck(&mr, &for_routes.deleting_backends(&ns))
                    .into_iter()
                    .map(|name| ObjectRef::new(&name).within(&ns))
                    .collect::<Vec<_>>()
            })
            .graceful_shutdown_on(shutdown.clone())
            .run(reconcile_backend, error_policy_backend, ctx.clone())
            .for_each(|_| async {})
    };

    let (ctx_tenants, shutdown_tenants) = (ctx.clone(), shutdown.clone());
    let route_ctl = {
        let for_backends = ctx.clone();
        let for_rivals = ctx.clone();
        Controller::for_stream(route_stream, ctx.routes.clone())
            .with_config(controller::Config::default().concurrency(concurrency))
            // A backend appearing, disappearing or changing readiness changes the routes
            // naming it.
            .watches(backends, mine.clone(), move |ib| {
                let ns = ib.namespace().unwrap_or_default();
                for_backends
                    .naming(&ns, &ib.name_any())
                    .iter()
                    .map(|mr| ObjectRef::from_obj(&**mr))
                    .collect::<Vec<_>>()
            })
            // A route claiming, or letting go of, a model name changes the other claimants.
            .watches(routes, mine.clone(), move |mr| {
                let ns = mr.namespace().unwrap_or_default();
                let model = mr
                    .spec
                    .model_name(mr.metadata.name.as_deref().unwrap_or_default());
                conflict::affected(&mr, &for_rivals.claimants_or_conflicted(&ns, model))
                    .iter()
                    .map(|r| ObjectRef::from_obj(&**r))
                    .collect::<Vec<_>>()
            })
            .graceful_shutdown_on(shutdown)
            .run(reconcile_route, error_policy_route, ctx)
            .for_each(|_| async {})
    };

    let tenant_ctl = {
        let tenants = Controller::new(scope.api::<Tenant>(&client), mine);
        let store = tenants.store();
        tenants
            .with_config(controller::Config::default().concurrency(concurrency))
            .watches_stream(credential_events(), move |secret| {
                let name = secret.name_any();
                store
                    .state()
                    .into_iter()
                    .filter(|t| {
                        t.metadata.namespace == secret.metadata.namespace
                            && t.spec.keys.iter().any(|k| k.secret_ref.name == name)
                    })
                    .map(|t| ObjectRef::from_obj(&*t))
                    .collect::<Vec<_>>()
            })
            .graceful_shutdown_on(shutdown_tenants)
            .run(reconcile_tenant, error_policy_tenant, ctx_tenants)
            .for_each(|_| async {})
    };

    tokio::join!(backend_ctl, route_ctl, tenant_ctl);
}
