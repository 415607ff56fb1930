//! `switchyard gateway`: the data plane. OpenAI- and Anthropic-compatible endpoints that
//! apply each ModelRoute's weights, translate between dialects, fail over and measure. It
//! serves from a routing snapshot rebuilt from reflector caches on watch events, so that no
//! request waits on the API server or reads the caches.

mod balance;
#[doc(hidden)]
pub mod bench;
mod cache;
mod client;
mod failure;
mod metrics;
mod outlier;
mod pick;
mod proxy;
mod relay;
mod snapshot;
#[cfg(test)]
mod tests;
pub mod translate;
mod upstream;
mod validate;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::sync::Notify;

use crate::api::{Dialect, InferenceBackend, ModelRoute};
use crate::serve::{self, Readiness};
use cache::Caches;
use proxy::Gateway;
use upstream::Operation;

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Address applications call (OpenAI- and Anthropic-compatible API).
    #[arg(long, env = "SWITCHYARD_LISTEN_ADDR", default_value = "127.0.0.1:8000")]
    pub listen_addr: SocketAddr,
    /// Namespace whose routes this gateway serves; all namespaces when unset.
    #[arg(long, env = "SWITCHYARD_NAMESPACE")]
    pub namespace: Option<String>,
    /// Largest request body accepted; larger ones get 413.
    #[arg(long, default_value_t = 10 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Longest a client may take to send a request's headers, and to stay idle on a
    /// keep-alive connection; then the connection is closed.
    #[arg(long, env = "SWITCHYARD_HEADER_READ_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,
    /// Longest a request may take end to end, across all attempts.
    #[arg(long, default_value = "300s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// Most attempts sent upstream per request: the first plus failovers.
    #[arg(long, default_value_t = 3)]
    pub max_attempts: usize,
    /// After SIGTERM, how long the gateway keeps serving while reporting not ready, so load
    /// balancers and endpoint controllers stop sending to it before it stops listening;
    /// then it drains the requests in flight. A request sent meanwhile is still served.
    #[arg(long, env = "SWITCHYARD_SHUTDOWN_DELAY", default_value = "5s", value_parser = parse_duration)]
    pub shutdown_delay: Duration,
    /// Consecutive failures (5xx, connect failures, timeouts) that eject a pod or an
    /// external backend as an outlier (Envoy's default).
    #[arg(long, default_value_t = 5)]
    pub outlier_consecutive_failures: u32,
    /// First ejection; each further ejection of the same host lasts this many times longer.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub outlier_base_ejection: Duration,
    /// Most of a backend's endpoints ejected at once, in percent (one may always be).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub outlier_max_ejection_percent: u32,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    crate::duration::parse(s).map_err(|e| e.to_string())
}

/// Starts a reflector for `K` and returns its store; the watch retries with backoff forever
/// and notifies `events` of every change, for the routing snapshot to be rebuilt.
fn reflect<K>(api: Api<K>, events: Arc<Notify>) -> Store<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let kind = K::kind(&()).into_owned();
    let watch = watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(crate::slim::slim)
        .reflect(writer)
        .for_each(move |r| {
            match r {
                Ok(_) => events.notify_one(),
                Err(e) => tracing::warn!(%kind, error = %e, "watch error; retrying"),
            }
            futures::future::ready(())
        });
    tokio::spawn(watch);
    store
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let client = Client::try_default().await?;
    let ns = args.namespace.as_deref();
    let events = Arc::new(Notify::new());
    let caches = Caches {
        routes: reflect(api::<ModelRoute>(&client, ns), events.clone()),
        backends: reflect(api::<InferenceBackend>(&client, ns), events.clone()),
        secrets: reflect(api::<Secret>(&client, ns), events.clone()),
        slices: reflect(api::<EndpointSlice>(&client, ns), events.clone()),
    };

    let registry = prometheus::Registry::new();
    let metrics = Arc::new(metrics::Metrics::register(&registry)?);
    let cfg = proxy::Config {
        max_body_bytes: args.max_body_bytes,
        request_timeout: args.request_timeout,
        max_attempts: args.max_attempts,
        outliers: outlier::OutlierConfig {
            consecutive_failures: args.outlier_consecutive_failures,
            base_ejection: args.outlier_base_ejection,
            max_ejection_percent: args.outlier_max_ejection_percent,
        },
    };
    let snapshots = Arc::new(snapshot::Snapshots::new(metrics.clone(), cfg.outliers));
    let ready = Readiness::default();
    // Ready once the first routing table is built from fully listed caches.
    tokio::spawn(snapshot::run(
        snapshots.clone(),
        caches,
        events,
        ready.clone(),
    ));
    let gateway = Arc::new(Gateway::new(snapshots, metrics, cfg)?);
    {
        // Ends ejections on time, so the gauge the controller reads falls back without traffic.
        let gw = Arc::downgrade(&gateway);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let Some(gw) = gw.upgrade() else { break };
                gw.sweep_outliers();
            }
        });
    }
    let app = Router::new()
        .route("/v1/chat/completions", post(chat_openai))
        .route("/v1/messages", post(chat_anthropic))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(models))
        .with_state(gateway)
        .merge(serve::ops_router(registry, ready.clone()));
    let delay = args.shutdown_delay;
    let shutdown = async move {
        serve::shutdown_signal().await;
        ready.set(false);
        if !delay.is_zero() {
            tracing::info!(delay = %crate::duration::format(delay), "not ready; still serving until load balancers notice");
            tokio::time::sleep(delay).await;
        }
    };
    let listener = tokio::net::TcpListener::bind(args.listen_addr).await?;
    tracing::info!(addr = %args.listen_addr, "listening");
    serve::serve_on(listener, app, args.header_read_timeout, shutdown).await
}

async fn chat_openai(State(gw): State<Arc<Gateway>>, headers: HeaderMap, body: Body) -> Response {
    gw.serve(Dialect::Openai, Operation::Chat, headers, body)
        .await
}

async fn chat_anthropic(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    gw.serve(Dialect::Anthropic, Operation::Chat, headers, body)
        .await
}

async fn embeddings(State(gw): State<Arc<Gateway>>, headers: HeaderMap, body: Body) -> Response {
    gw.serve(Dialect::Openai, Operation::Embeddings, headers, body)
        .await
}

/// `GET /v1/models`: the model names served, in OpenAI's list shape.
async fn models(State(gw): State<Arc<Gateway>>) -> Response {
    let snapshot = gw.snapshots.load();
    let data: Vec<_> = snapshot
        .listed()
        .iter()
        .map(|(id, created)| json!({"id": id, "object": "model", "created": created, "owned_by": "switchyard"}))
        .collect();
    axum::Json(json!({"object": "list", "data": data})).into_response()
}
