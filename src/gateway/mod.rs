//! `switchyard gateway`: the data plane. OpenAI- and Anthropic-compatible endpoints that
//! apply each ModelRoute's weights, translate between dialects, fail over and measure. It
//! serves from a routing snapshot rebuilt from reflector caches on watch events, so that no
//! request waits on the API server or reads the caches.

mod auth;
mod balance;
#[doc(hidden)]
pub mod bench;
mod cache;
mod client;
pub mod evaluation;
mod failure;
#[cfg(test)]
mod fuzz;
mod metrics;
mod models;
mod outlier;
mod pick;
mod price;
mod proxy;
mod relay;
mod scrub;
mod snapshot;
mod structured;
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
use axum::extract::{Extension, State};
use axum::http::Request;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;

use crate::api::{CredentialPurpose, Dialect, InferenceBackend, ModelRoute, Tenant};
use crate::serve::{self, Readiness};
use cache::Caches;
use proxy::Gateway;
use upstream::Operation;

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Address applications call (OpenAI- and Anthropic-compatible API). Only the API is
    /// served here; `/metrics`, `/healthz` and `/readyz` are on `--admin-addr`.
    #[arg(long, env = "SWITCHYARD_LISTEN_ADDR", default_value = "127.0.0.1:8000")]
    pub listen_addr: SocketAddr,
    /// Address of `/metrics`, `/healthz` and `/readyz`, for Prometheus and the kubelet.
    #[arg(long, env = "SWITCHYARD_ADMIN_ADDR", default_value = "127.0.0.1:9090")]
    pub admin_addr: SocketAddr,
    /// `required`: every request presents a Tenant's key. `disabled`: anyone who can reach
    /// the gateway may use every route of the namespaces it serves (trusted networks only).
    #[arg(long, env = "SWITCHYARD_AUTH", value_enum, default_value = "required")]
    pub auth: auth::AuthMode,
    /// The one identity whose ServiceAccount tokens (audience `switchyard-gateway`, verified
    /// by TokenReview) may replay evaluation sets, e.g.
    /// `system:serviceaccount:switchyard-system:switchyard-controller`. Unset: replays are
    /// refused.
    #[arg(long, env = "SWITCHYARD_EVALUATION_IDENTITY")]
    pub evaluation_identity: Option<String>,
    /// Namespaces whose routes this gateway serves (repeat the flag, or separate with
    /// commas); all namespaces when unset. With namespaces given, it watches only those, so
    /// namespace-scoped Roles suffice.
    #[arg(long, env = "SWITCHYARD_NAMESPACE", value_delimiter = ',')]
    pub namespace: Vec<String>,
    /// Largest request body accepted; larger ones get 413.
    #[arg(long, default_value_t = 10 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Longest a client may take to send a request's headers, and to stay idle on a
    /// keep-alive connection; then the connection is closed.
    #[arg(long, env = "SWITCHYARD_HEADER_READ_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,
    /// Longest a client may take to send a request's body once its headers are in; then the
    /// request is answered 408.
    #[arg(long, env = "SWITCHYARD_BODY_READ_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub body_read_timeout: Duration,
    /// Client connections open at once; past it new connections wait to be accepted.
    #[arg(long, env = "SWITCHYARD_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,
    /// Requests served at once (streams included, until they end); past it requests are
    /// answered 503 at once, before their body is read, so memory stays bounded by
    /// max-in-flight × max-body-bytes.
    #[arg(long, env = "SWITCHYARD_MAX_IN_FLIGHT", default_value_t = 1_000)]
    pub max_in_flight: usize,
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
fn reflect<K>(api: Api<K>, config: watcher::Config, events: Arc<Notify>) -> Store<K>
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
    let watch = watcher(api, config)
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

/// A store of `K` per namespace served, or one over all namespaces.
fn watch<K>(
    client: &Client,
    namespaces: &[String],
    config: &watcher::Config,
    events: &Arc<Notify>,
) -> cache::Stores<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    if namespaces.is_empty() {
        return reflect(Api::all(client.clone()), config.clone(), events.clone()).into();
    }
    cache::Stores::new(
        namespaces
            .iter()
            .map(|ns| {
                reflect(
                    Api::namespaced(client.clone(), ns),
                    config.clone(),
                    events.clone(),
                )
            })
            .collect(),
    )
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let client = Client::try_default().await?;
    let ns = &args.namespace;
    let events = Arc::new(Notify::new());
    let all = watcher::Config::default();
    // Only Secrets labelled as credentials are ever listed, watched or held in memory.
    let credentials = watcher::Config::default().labels(&CredentialPurpose::selector());
    let caches = Caches {
        routes: watch::<ModelRoute>(&client, ns, &all, &events),
        backends: watch::<InferenceBackend>(&client, ns, &all, &events),
        secrets: watch::<Secret>(&client, ns, &credentials, &events),
        slices: watch::<EndpointSlice>(&client, ns, &all, &events),
        tenants: watch::<Tenant>(&client, ns, &all, &events),
    };

    let registry = prometheus::Registry::new();
    let metrics = Arc::new(metrics::Metrics::register(&registry)?);
    let cfg = proxy::Config {
        max_body_bytes: args.max_body_bytes,
        body_read_timeout: args.body_read_timeout,
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
    if args.auth == auth::AuthMode::Disabled {
        tracing::warn!(
            "AUTHENTICATION IS DISABLED (--auth=disabled): anyone who can reach {} may use every route of the namespaces this gateway serves, spending their provider keys",
            args.listen_addr
        );
    }
    let evaluations = args.evaluation_identity.clone().map(|identity| {
        Arc::new(evaluation::Evaluations::new(
            Box::new(evaluation::TokenReviewer(client.clone())),
            identity,
        ))
    });
    let app = api_router(gateway, args.auth, args.max_in_flight, evaluations);
    let admin = serve::ops_router(registry, ready.clone());
    let delay = args.shutdown_delay;
    let shutdown = async move {
        serve::shutdown_signal().await;
        ready.set(false);
        if !delay.is_zero() {
            tracing::info!(delay = %crate::duration::format(delay), "not ready; still serving until load balancers notice");
            tokio::time::sleep(delay).await;
        }
    };
    let admin_listener = tokio::net::TcpListener::bind(args.admin_addr).await?;
    tracing::info!(addr = %args.admin_addr, "admin endpoints (/metrics, /healthz, /readyz) listening");
    // The admin endpoints stay up until the process ends, so probes and the last scrape see
    // the drain.
    tokio::spawn(serve::serve_on(
        admin_listener,
        admin,
        serve::Limits::default(),
        std::future::pending(),
    ));
    let listener = tokio::net::TcpListener::bind(args.listen_addr).await?;
    tracing::info!(addr = %args.listen_addr, "listening");
    let limits = serve::Limits {
        header_read_timeout: args.header_read_timeout,
        max_connections: args.max_connections,
    };
    serve::serve_on(listener, app, limits, shutdown).await
}

/// The endpoints applications call, every one of them (the fallback included) behind the
/// key check and the in-flight cap: `ApiService` wraps the whole router, so a route added here is
/// checked without further thought.
pub(crate) fn api_router(
    gateway: Arc<Gateway>,
    mode: auth::AuthMode,
    max_in_flight: usize,
    evaluations: Option<Arc<evaluation::Evaluations>>,
) -> ApiService {
    let router = Router::new()
        .route(
            "/v1/chat/completions",
            endpoint(Dialect::Openai, Operation::Chat),
        )
        .route(
            "/v1/messages",
            endpoint(Dialect::Anthropic, Operation::Chat),
        )
        .route(
            "/v1/responses",
            endpoint(Dialect::Openai, Operation::Responses),
        )
        .route(
            "/v1/messages/count_tokens",
            endpoint(Dialect::Anthropic, Operation::CountTokens),
        )
        .route(
            "/v1/completions",
            endpoint(Dialect::Openai, Operation::Completions),
        )
        .route(
            "/v1/embeddings",
            endpoint(Dialect::Openai, Operation::Embeddings),
        )
        .route("/v1/models", get(models::list))
        // A model name may hold slashes (`meta-llama/Llama-3.1-8B-Instruct`).
        .route("/v1/models/{*id}", get(models::retrieve))
        .method_not_allowed_fallback(wrong_method)
        .fallback(unknown_endpoint)
        .with_state(gateway.clone());
    ApiService {
        router,
        gateway,
        mode,
        anonymous: Arc::new(auth::Caller::anonymous()),
        evaluations,
        permits: Arc::new(tokio::sync::Semaphore::new(max_in_flight.max(1))),
        max_in_flight: max_in_flight.max(1),
    }
}

/// The API router behind the key check and the in-flight cap. One service rather than two
/// `from_fn` middlewares, which box a cloned inner service and a future per layer per
/// request (profiled, the check and this service are about 1% of a request's CPU).
#[derive(Clone)]
pub(crate) struct ApiService {
    router: Router,
    gateway: Arc<Gateway>,
    mode: auth::AuthMode,
    anonymous: Arc<auth::Caller>,
    evaluations: Option<Arc<evaluation::Evaluations>>,
    permits: Arc<tokio::sync::Semaphore>,
    max_in_flight: usize,
}

impl ApiService {
    /// The caller, found by its key; `None`: no valid key (see `unauthenticated`).
    fn authenticate<B>(&self, req: &Request<B>) -> Option<Arc<auth::Caller>> {
        match self.mode {
            auth::AuthMode::Disabled => Some(self.anonymous.clone()),
            auth::AuthMode::Required => {
                let snapshot = self.gateway.snapshots.load();
                auth::presented(req.headers())
                    .and_then(|k| snapshot.keys.find(k))
                    .cloned()
            }
        }
    }

    /// The 401, in the caller's dialect.
    fn unauthenticated<B>(req: &Request<B>) -> Response {
        proxy::error_response(
            auth::dialect_of(req.uri().path(), req.headers()),
            401,
            auth::rejection(req.headers()),
        )
    }

    /// Past `--max-in-flight`: 503 at once, before the body is read.
    fn shed<B>(&self, req: &Request<B>) -> Response {
        let mut resp = proxy::error_response(
            auth::dialect_of(req.uri().path(), req.headers()),
            503,
            &format!(
                "the gateway is serving its limit of {} requests at once; retry shortly",
                self.max_in_flight
            ),
        );
        resp.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("1"),
        );
        resp
    }
}

impl<B> tower_service::Service<Request<B>> for ApiService
where
    B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Response, std::convert::Infallible>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        if head_size(&req) > serve::MAX_HEAD {
            let resp = proxy::error_response(
                auth::dialect_of(req.uri().path(), req.headers()),
                431,
                &format!(
                    "the request's headers exceed the gateway's limit of {} bytes",
                    serve::MAX_HEAD
                ),
            );
            return Box::pin(std::future::ready(Ok(resp)));
        }
        if req.headers().contains_key(evaluation::EVALUATION_HEADER) {
            return self.replay(req);
        }
        let Some(caller) = self.authenticate(&req) else {
            return Box::pin(std::future::ready(Ok(Self::unauthenticated(&req))));
        };
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            return Box::pin(std::future::ready(Ok(self.shed(&req))));
        };
        req.extensions_mut().insert(caller);
        let answer = tower_service::Service::call(&mut self.router, req.map(Body::new));
        Box::pin(async move { Ok(hold_until_done(answer.await?, permit)) })
    }
}

impl ApiService {
    /// A replay by the controller: its token verified by the API server (asynchronously,
    /// unlike a key), whatever `--auth` says, since a replay may pin backends.
    fn replay<B>(&mut self, mut req: Request<B>) -> ServiceFuture
    where
        B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
        B::Error: Into<axum::BoxError>,
    {
        let (evaluations, mut router) = (self.evaluations.clone(), self.router.clone());
        let permits = self.permits.clone();
        let shed = self.shed(&req);
        Box::pin(async move {
            let dialect = auth::dialect_of(req.uri().path(), req.headers());
            let Some(evaluations) = evaluations else {
                return Ok(proxy::error_response(
                    dialect,
                    401,
                    "this gateway accepts no evaluation replays (--evaluation-identity is not set)",
                ));
            };
            let token = auth::presented(req.headers()).unwrap_or_default().to_vec();
            let Some(caller) = evaluations.caller(&token).await else {
                return Ok(proxy::error_response(
                    dialect,
                    401,
                    "the token presented for an evaluation replay is not the accepted ServiceAccount's (audience switchyard-gateway)",
                ));
            };
            let Ok(permit) = permits.try_acquire_owned() else {
                return Ok(shed);
            };
            req.extensions_mut().insert(caller);
            let resp = tower_service::Service::call(&mut router, req.map(Body::new)).await?;
            Ok(hold_until_done(resp, permit))
        })
    }
}

type ServiceFuture = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Response, std::convert::Infallible>> + Send>,
>;

/// The answer, holding its in-flight permit until its body is sent.
fn hold_until_done(resp: Response, permit: tokio::sync::OwnedSemaphorePermit) -> Response {
    // A body already in memory is done with the request; a stream holds its permit until
    // it ends.
    if axum::body::HttpBody::size_hint(resp.body())
        .exact()
        .is_some()
    {
        return resp;
    }
    resp.map(|body| {
        Body::new(http_body_util::BodyExt::map_frame(body, move |frame| {
            let _held = &permit;
            frame
        }))
    })
}

/// The size of a request's line and headers, as sent.
fn head_size<B>(req: &Request<B>) -> usize {
    let line = req.method().as_str().len()
        + req.uri().path_and_query().map_or(1, |p| p.as_str().len())
        + 12;
    req.headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum::<usize>()
        + line
}

/// Every endpoint, as the errors for unknown paths and methods name them.
const ENDPOINTS: &str = "POST /v1/chat/completions, POST /v1/messages, POST /v1/messages/count_tokens, POST /v1/responses, POST /v1/completions, POST /v1/embeddings, GET /v1/models and GET /v1/models/{id}";

/// A known path with another method: 405 in the caller's dialect, never an empty body.
async fn wrong_method(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let allowed = if uri.path().starts_with("/v1/models") {
        "GET"
    } else {
        "POST"
    };
    let mut resp = proxy::error_response(
        auth::dialect_of(uri.path(), &headers),
        405,
        &format!(
            "{method} is not allowed on {}; use {allowed} (this gateway serves {ENDPOINTS})",
            uri.path()
        ),
    );
    resp.headers_mut().insert(
        axum::http::header::ALLOW,
        axum::http::HeaderValue::from_static(allowed),
    );
    resp
}

/// Any other path or method: an error in the caller's dialect naming what is served.
async fn unknown_endpoint(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    proxy::error_response(
        auth::dialect_of(uri.path(), &headers),
        404,
        &format!(
            "{method} {} is not an endpoint of this gateway; it serves {ENDPOINTS}",
            uri.path()
        ),
    )
}

type Caller = Extension<Arc<auth::Caller>>;

/// The `POST` handler of an API endpoint: its body served as `op`, in the `caller`'s dialect.
fn endpoint(caller: Dialect, op: Operation) -> axum::routing::MethodRouter<Arc<Gateway>> {
    post(
        move |State(gw): State<Arc<Gateway>>,
              Extension(who): Caller,
              headers: HeaderMap,
              body: Body| async move { gw.serve(who, caller, op, headers, body).await },
    )
}
