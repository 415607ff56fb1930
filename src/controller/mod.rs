//! `switchyard controller`: reconciles InferenceBackends and ModelRoutes.

mod backend;
pub mod conditions;
mod metrics;
mod route;

pub use backend::{Summary, external_readiness, summarize};
pub use route::{next_status, same_split, weights_summary};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};

use crate::api::{InferenceBackend, ModelRoute};
use crate::serve::{self, Readiness};
use metrics::Metrics;

/// Field manager for everything the controller server-side applies.
pub const FIELD_MANAGER: &str = "switchyard-controller";

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

/// Shared by every reconcile.
pub struct Context {
    pub client: Client,
    metrics: Metrics,
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
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let client = Client::try_default().await?;
    let registry = prometheus::Registry::new();
    let ctx = Arc::new(Context {
        client: client.clone(),
        metrics: Metrics::register(&registry)?,
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

    let backends: Api<InferenceBackend> = Api::all(client.clone());
    let routes: Api<ModelRoute> = Api::all(client.clone());
    // Probe the API once so a missing CRD or RBAC rule fails start-up with a clear error.
    backends
        .list(&kube::api::ListParams::default().limit(1))
        .await?;
    routes
        .list(&kube::api::ListParams::default().limit(1))
        .await?;
    ready.set(true);

    let backend_ctl = Controller::new(backends.clone(), watcher::Config::default())
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
        .graceful_shutdown_on(shutdown.clone())
        .run(reconcile_route, error_policy_route, ctx.clone())
        .for_each(|_| async {});

    let ops = serve::ops_router(registry, ready.clone());
    let http = tokio::spawn(serve::serve(args.metrics_addr, ops, shutdown));
    tokio::spawn(async move {
        serve::shutdown_signal().await;
        ready.set(false);
        let _ = stop_tx.send(true);
    });
    tokio::join!(backend_ctl, route_ctl);
    http.await??;
    tracing::info!("controller stopped");
    Ok(())
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
