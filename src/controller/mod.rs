//! `switchyard controller`: reconciles InferenceBackends and ModelRoutes.

mod backend;
pub mod conditions;
pub mod leader;
mod metrics;
mod route;

pub use backend::workload::{self, BACKEND_LABEL};
pub use backend::{Summary, external_readiness, referenced_secrets, summarize};
pub use route::{COMMAND_ANNOTATION, COMMAND_ID_ANNOTATION, same_split, weights_summary};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};

use crate::api::{InferenceBackend, ModelRoute};
use crate::serve::{self, Readiness};
use backend::warmup::Warmer;
use metrics::Metrics;

/// Field manager for everything the controller server-side applies.
pub const FIELD_MANAGER: &str = "switchyard-controller";
/// Name of the controller in Events and of its leader-election Lease.
pub const CONTROLLER_NAME: &str = "switchyard-controller";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[source] kube::Error),
    #[error("object has no namespace")]
    MissingNamespace,
}

impl Error {
    /// A fixed label for metrics: never the error text.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::MissingNamespace => "invalid",
        }
    }
}

/// Tunables that tests shorten.
#[derive(Debug, Clone)]
pub struct Config {
    /// How long pods may stay unschedulable before the backend reports Stalled.
    pub unschedulable_grace: Duration,
    /// Prometheus that migrations are judged by, unless a route names its own.
    pub prometheus_url: Option<String>,
    /// Prometheus' scrape interval of the gateway's metrics; read from its configuration
    /// API when not set.
    pub scrape_interval: Option<Duration>,
}

/// Shared by every reconcile.
pub struct Context {
    pub client: Client,
    pub config: Config,
    metrics: Metrics,
    recorder: Recorder,
    warmer: Warmer,
    scrape_intervals: ScrapeIntervals,
}

/// Scrape intervals read from Prometheus' configuration API, per URL, re-read every few
/// minutes so a changed configuration is noticed without asking on every analysis.
#[derive(Default)]
struct ScrapeIntervals(std::sync::Mutex<std::collections::HashMap<String, (Instant, Duration)>>);

impl ScrapeIntervals {
    const TTL: Duration = Duration::from_secs(300);

    async fn get(&self, prometheus: &crate::analysis::Prometheus) -> Option<Duration> {
        let url = prometheus.url().to_owned();
        if let Some((at, d)) = self.0.lock().expect("scrape interval lock").get(&url)
            && at.elapsed() < Self::TTL
        {
            return Some(*d);
        }
        match prometheus.scrape_interval().await {
            Ok(d) => {
                self.0
                    .lock()
                    .expect("scrape interval lock")
                    .insert(url, (Instant::now(), d));
                Some(d)
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not read Prometheus' scrape interval; assuming its default of 1m");
                None
            }
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Address of /healthz, /readyz and /metrics.
    #[arg(
        long,
        env = "SWITCHYARD_METRICS_ADDR",
        default_value = "127.0.0.1:8080"
    )]
    pub metrics_addr: SocketAddr,
    /// How long pods may stay unschedulable before the backend reports Stalled.
    #[arg(long, env = "SWITCHYARD_UNSCHEDULABLE_GRACE", default_value = "30s", value_parser = parse_duration)]
    pub unschedulable_grace: Duration,
    /// Prometheus that migrations are judged by (a route may name its own).
    #[arg(long, env = "SWITCHYARD_PROMETHEUS_URL")]
    pub prometheus_url: Option<String>,
    /// Prometheus' scrape interval for the gateway's metrics; analysis windows are at least
    /// four of them. Read from Prometheus' configuration API (its global interval) when unset.
    #[arg(long, env = "SWITCHYARD_SCRAPE_INTERVAL", value_parser = parse_duration)]
    pub scrape_interval: Option<Duration>,
    /// Namespace of the leader-election Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "switchyard-system")]
    pub lease_namespace: String,
    /// This replica's name in the Lease; defaults to the host name and process id.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// How long the leader's lease lasts without renewal (the longest a failover takes).
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,
    /// How often the leader renews its lease.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub lease_renew_every: Duration,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    crate::duration::parse(s).map_err(|e| e.to_string())
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let client = Client::try_default().await?;
    let registry = prometheus::Registry::new();
    let metrics = Metrics::register(&registry)?;
    let identity = args.identity.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        format!("{}-{}", host.trim(), std::process::id())
    });
    let ctx = Arc::new(Context {
        client: client.clone(),
        config: Config {
            unschedulable_grace: args.unschedulable_grace,
            prometheus_url: args.prometheus_url.clone(),
            scrape_interval: args.scrape_interval,
        },
        scrape_intervals: ScrapeIntervals::default(),
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: CONTROLLER_NAME.into(),
                instance: Some(identity.clone()),
            },
        ),
        warmer: Warmer::new(metrics.warmup_requests.clone()),
        metrics,
    });

    let ready = Readiness::default();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let shutdown = {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
        .boxed()
        .shared()
    };
    {
        let ready = ready.clone();
        tokio::spawn(async move {
            serve::shutdown_signal().await;
            ready.set(false);
            let _ = stop_tx.send(true);
        });
    }
    let ops = serve::ops_router(registry, ready.clone());
    let http = tokio::spawn(serve::serve(args.metrics_addr, ops, shutdown.clone()));

    // Probe the API once so a missing CRD or RBAC rule fails start-up with a clear error.
    let backends: Api<InferenceBackend> = Api::all(client.clone());
    let routes: Api<ModelRoute> = Api::all(client.clone());
    backends
        .list(&kube::api::ListParams::default().limit(1))
        .await?;
    routes
        .list(&kube::api::ListParams::default().limit(1))
        .await?;
    // A standby is healthy and ready: it is doing its job, which is to wait.
    ready.set(true);

    let elector = leader::Elector::new(
        client.clone(),
        leader::Config {
            namespace: args.lease_namespace.clone(),
            name: CONTROLLER_NAME.into(),
            identity,
            lease_duration: args.lease_duration,
            renew_every: args.lease_renew_every,
        },
    );
    tokio::select! {
        () = elector.acquire() => {}
        () = shutdown.clone() => {
            http.await??;
            return Ok(());
        }
    }
    ctx.metrics.leader.set(1);

    let controllers = run_controllers(client, ctx.clone(), shutdown.clone());
    let outcome = tokio::select! {
        () = controllers => Ok(()),
        lost = elector.hold() => Err(lost),
    };
    elector.release().await;
    http.await??;
    tracing::info!("controller stopped");
    outcome
}

async fn run_controllers(
    client: Client,
    ctx: Arc<Context>,
    shutdown: futures::future::Shared<futures::future::BoxFuture<'static, ()>>,
) {
    let backends: Api<InferenceBackend> = Api::all(client.clone());
    let routes: Api<ModelRoute> = Api::all(client.clone());

    let backend_ctl = Controller::new(backends.clone(), watcher::Config::default());
    let backend_store = backend_ctl.store();
    // Only Secret metadata is watched: the controller needs to know a Secret changed, and
    // reads the one it needs; it never holds every Secret's data in memory.
    let secret_events = watcher(
        Api::<PartialObjectMeta<Secret>>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .touched_objects();
    let backend_ctl = backend_ctl
        .owns(
            Api::<Deployment>::all(client.clone()),
            watcher::Config::default(),
        )
        .watches(
            Api::<Pod>::all(client.clone()),
            watcher::Config::default().labels(BACKEND_LABEL),
            |pod| {
                let name = pod.labels().get(BACKEND_LABEL)?.clone();
                Some(ObjectRef::new(&name).within(&pod.namespace()?))
            },
        )
        .watches_stream(secret_events, move |secret| {
            let ns = secret.namespace();
            let name = secret.name_any();
            backend_store
                .state()
                .into_iter()
                .filter(|ib| {
                    ib.namespace() == ns && referenced_secrets(&ib.spec).contains(&name.as_str())
                })
                .map(|ib| ObjectRef::from_obj(&*ib))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(shutdown.clone())
        .run(reconcile_backend, error_policy_backend, ctx.clone())
        .for_each(|_| async {});

    let route_ctl = Controller::new(routes, watcher::Config::default());
    let route_store = route_ctl.store();
    let route_ctl = route_ctl
        // A backend appearing or disappearing changes whether the routes naming it resolve.
        .watches(backends, watcher::Config::default(), move |ib| {
            let ns = ib.namespace();
            let name = ib.name_any();
            route_store
                .state()
                .into_iter()
                .filter(|mr| {
                    mr.namespace() == ns
                        && (mr.spec.backends.iter().any(|b| b.name == name)
                            || mr.spec.fallback.iter().any(|b| b.name == name))
                })
                .map(|mr| ObjectRef::from_obj(&*mr))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(shutdown)
        .run(reconcile_route, error_policy_route, ctx)
        .for_each(|_| async {});

    tokio::join!(backend_ctl, route_ctl);
}

async fn reconcile_backend(obj: Arc<InferenceBackend>, ctx: Arc<Context>) -> Result<Action, Error> {
    timed(
        "inferencebackend",
        &ctx,
        backend::reconcile(obj, ctx.clone()),
    )
    .await
}

async fn reconcile_route(obj: Arc<ModelRoute>, ctx: Arc<Context>) -> Result<Action, Error> {
    timed("modelroute", &ctx, route::reconcile(obj, ctx.clone())).await
}

async fn timed(
    kind: &'static str,
    ctx: &Context,
    fut: impl Future<Output = Result<Action, Error>>,
) -> Result<Action, Error> {
    let start = Instant::now();
    let result = fut.await;
    ctx.metrics
        .observe(kind, start.elapsed(), result.as_ref().err());
    result
}

fn error_policy_backend(obj: Arc<InferenceBackend>, err: &Error, _: Arc<Context>) -> Action {
    error_policy(obj.as_ref(), err)
}

fn error_policy_route(obj: Arc<ModelRoute>, err: &Error, _: Arc<Context>) -> Action {
    error_policy(obj.as_ref(), err)
}

fn error_policy<K: Resource>(obj: &K, err: &Error) -> Action {
    tracing::warn!(name = obj.meta().name.as_deref().unwrap_or_default(), error = %err, "reconcile failed");
    match err {
        Error::MissingNamespace => Action::await_change(),
        Error::Kube(_) => Action::requeue(Duration::from_secs(5)),
    }
}
