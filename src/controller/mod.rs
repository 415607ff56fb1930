//! `switchyard controller`: reconciles InferenceBackends and ModelRoutes.

mod backend;
mod backoff;
pub mod conditions;
mod conflict;
mod cost;
mod credentials;
mod decisions;
mod evaluation;
mod index;
pub mod leader;
mod leadership;
mod metrics;
mod route;
mod runner;
mod scrape;
mod status;
mod tenant;
mod usage;

pub use backend::workload::{self, BACKEND_LABEL};
pub use backend::{Summary, external_readiness, referenced_secrets, summarize};
pub use route::{COMMAND_ANNOTATION, COMMAND_ID_ANNOTATION, same_split, weights_summary};
pub use runner::run;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use kube::runtime::controller::Action;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, Resource, ResourceExt};

use crate::api::{InferenceBackend, ModelRoute, Tenant};
use backend::warmup::Warmer;
use metrics::Metrics;

/// Field manager for everything the controller server-side applies.
pub const FIELD_MANAGER: &str = "switchyard-controller";
/// Name of the controller in Events and of its leader-election Lease.
pub const CONTROLLER_NAME: &str = "switchyard-controller";
/// The label that gives an InferenceBackend, ModelRoute or Tenant to one of several
/// controllers in a cluster (`--instance-id`), as Argo Rollouts' controller-instance-id does.
pub const INSTANCE_LABEL: &str = "switchyard.dev/controller-instance-id";

/// The label selector of the objects a controller reconciles: those carrying its instance id,
/// or, without an id, those carrying none, so two installs never both act on one object.
pub fn instance_selector(instance_id: Option<&str>) -> String {
    match instance_id {
        Some(id) => format!("{INSTANCE_LABEL}={id}"),
        None => format!("!{INSTANCE_LABEL}"),
    }
}

/// An instance id must be a label value, or no object could carry it.
fn parse_instance_id(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric();
    if ok {
        Ok(s.to_owned())
    } else {
        Err("a label value: at most 63 letters, digits, '-', '_' or '.', beginning and ending with a letter or digit".into())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[source] kube::Error),
    #[error("object has no namespace")]
    MissingNamespace,
    /// The object changed since the decision was made (409 on a write that carried its
    /// resourceVersion): decide again from fresh state.
    #[error("{0} changed since it was read; retrying from its current state")]
    Conflict(String),
    #[error("the watch caches stopped")]
    CacheStopped,
    /// Server-side apply of a child object failed; 403 and 422 make the backend Stalled.
    #[error("applying the {kind}: {source}")]
    Apply {
        kind: &'static str,
        #[source]
        source: kube::Error,
    },
}

impl Error {
    /// A fixed label for metrics: never the error text.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::MissingNamespace => "invalid",
            Error::Conflict(_) => "conflict",
            Error::CacheStopped => "cache",
            Error::Apply { .. } => "apply",
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
    /// Which objects are this controller's (`--instance-id`).
    pub instance_id: Option<String>,
    /// The gateway evaluation sets are replayed through (`--gateway-url`).
    pub gateway_url: Option<String>,
    /// The controller's own ServiceAccount (namespace, name): replays present its token.
    pub service_account: (String, String),
}

/// Shared by every reconcile.
pub struct Context {
    pub client: Client,
    pub config: Config,
    /// Every InferenceBackend and ModelRoute, from the controllers' own watches: reconciles
    /// read references here instead of calling the API server.
    pub backends: Store<InferenceBackend>,
    pub routes: Store<ModelRoute>,
    /// Lookups by model and backend name over the same objects, so that a watch event or a
    /// reconcile touches only the routes concerned.
    indexes: Indexes,
    /// Set once the matching store holds its first complete list.
    backends_listed: tokio::sync::watch::Receiver<bool>,
    routes_listed: tokio::sync::watch::Receiver<bool>,
    /// The controller's Prometheus, for what the gateway reports (ejected endpoints).
    prometheus: Option<crate::analysis::Prometheus>,
    metrics: Metrics,
    recorder: Recorder,
    warmer: Warmer,
    retries: backoff::Retries,
    /// Versions this controller wrote over (see `status::Written`).
    written: status::Written,
    scrape_intervals: scrape::ScrapeIntervals,
    /// The controller's token for replaying evaluation sets through the gateway.
    tokens: evaluation::Tokens,
}

/// The indexes over the stores, fed by the same watch streams.
#[derive(Default)]
pub struct Indexes {
    routes: RwLock<index::Relisted<index::RouteIndex>>,
    deleting: RwLock<index::Relisted<index::Deleting>>,
}

impl Context {
    /// The routes named `names` in `ns`, as the store holds them.
    fn routes_named<'a>(
        &self,
        ns: &str,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Vec<Arc<ModelRoute>> {
        names
            .into_iter()
            .filter_map(|n| self.routes.get(&ObjectRef::new(n).within(ns)))
            .collect()
    }

    /// Routes of `ns` claiming `model`.
    fn claimants(&self, ns: &str, model: &str) -> Vec<Arc<ModelRoute>> {
        let index = self.indexes.routes.read().expect("route index lock");
        self.routes_named(ns, index.live.claiming(ns, model))
    }

    /// Routes of `ns` naming backend `backend` in spec or status.
    fn naming(&self, ns: &str, backend: &str) -> Vec<Arc<ModelRoute>> {
        let index = self.indexes.routes.read().expect("route index lock");
        self.routes_named(ns, index.live.naming(ns, backend))
    }

    /// Routes of `ns` claiming `model` or reporting a model conflict.
    fn claimants_or_conflicted(&self, ns: &str, model: &str) -> Vec<Arc<ModelRoute>> {
        let index = self.indexes.routes.read().expect("route index lock");
        let names: BTreeSet<&str> = index
            .live
            .claiming(ns, model)
            .chain(index.live.conflicted(ns))
            .collect();
        self.routes_named(ns, names)
    }

    /// Backends of `ns` being deleted.
    fn deleting_backends(&self, ns: &str) -> Vec<Arc<InferenceBackend>> {
        let index = self.indexes.deleting.read().expect("deletion index lock");
        index
            .live
            .in_namespace(ns)
            .filter_map(|n| self.backends.get(&ObjectRef::new(n).within(ns)))
            .collect()
    }

    /// Waits until both caches hold a complete list; before that, an absent backend may
    /// merely not have been listed yet. Not `Store::wait_until_ready`: its one-shot channel
    /// wakes only the last of several waiters, and the others (reconciles started before the
    /// list arrived, or the controller's own runner) would wait until some unrelated event.
    async fn caches_ready(&self) -> Result<(), Error> {
        for listed in [&self.backends_listed, &self.routes_listed] {
            listed
                .clone()
                .wait_for(|l| *l)
                .await
                .map_err(|_| Error::CacheStopped)?;
        }
        Ok(())
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
    /// The gateway's API, e.g. http://switchyard-gateway.switchyard-system:8080, through which
    /// evaluation sets (`rollout.evaluation`) are replayed; without it a migration with an
    /// evaluation set holds before step 1 and says so.
    #[arg(long, env = "SWITCHYARD_GATEWAY_URL")]
    pub gateway_url: Option<String>,
    /// The controller's ServiceAccount, `NAME` in the Lease's namespace or `NAMESPACE/NAME`:
    /// replays present a token of it (TokenRequest, audience `switchyard-gateway`), which the
    /// gateway verifies.
    #[arg(
        long,
        env = "SWITCHYARD_SERVICE_ACCOUNT",
        default_value = "switchyard-controller"
    )]
    pub service_account: String,
    /// Namespaces to reconcile (repeat the flag, or separate with commas); all namespaces
    /// when unset. With namespaces given, the controller watches and writes only in those, so
    /// a Role in each (and one for its Lease) suffices.
    #[arg(long, env = "SWITCHYARD_NAMESPACE", value_delimiter = ',')]
    pub namespace: Vec<String>,
    /// Reconcile only InferenceBackends, ModelRoutes and Tenants labelled
    /// switchyard.dev/controller-instance-id=ID, for several controllers in one cluster (a
    /// second install while upgrading). Without it, only objects without that label.
    #[arg(long, env = "SWITCHYARD_INSTANCE_ID", value_parser = parse_instance_id)]
    pub instance_id: Option<String>,
    /// Namespace of the leader-election Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "switchyard-system")]
    pub lease_namespace: String,
    /// This replica's name in the Lease; defaults to the host name and process id.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// How long the leader's lease lasts without renewal (the longest a failover takes).
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,
    /// How often the leader renews its lease (and a standby looks at it).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub lease_renew_every: Duration,
    /// How long the leader keeps trying to renew before it stops acting: measured from its
    /// last successful renewal, shorter than --lease-duration so it has stopped before a
    /// standby may take over. Default: two thirds of --lease-duration.
    #[arg(long, value_parser = parse_duration)]
    pub lease_renew_deadline: Option<Duration>,
    /// Reconciles of one kind (routes, backends) that run at once; more wait their turn in
    /// the queue, as with controller-runtime's MaxConcurrentReconciles. Unbounded, thousands
    /// of objects created at once had a reconcile each in flight, holding its requests and
    /// answers in memory while the API server answered slowly.
    #[arg(long, env = "SWITCHYARD_MAX_CONCURRENT_RECONCILES", default_value_t = 32,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub max_concurrent_reconciles: u16,
}

/// Where one set of controllers works: the whole cluster, or one namespace. Every relation the
/// controller follows (route to backend, backend or tenant to Secret, rival routes claiming a
/// model) stays within a namespace, so a set per namespace decides exactly what one
/// cluster-wide set would, on a Role in each namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Cluster,
    Namespace(String),
}

impl Scope {
    /// One scope per namespace named (each once), or the cluster when none is.
    pub fn from_namespaces(namespaces: &[String]) -> Vec<Scope> {
        if namespaces.is_empty() {
            return vec![Scope::Cluster];
        }
        let unique: BTreeSet<&String> = namespaces.iter().collect();
        unique
            .into_iter()
            .map(|ns| Scope::Namespace(ns.clone()))
            .collect()
    }

    fn api<K>(&self, client: &Client) -> kube::Api<K>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
    {
        match self {
            Scope::Cluster => kube::Api::all(client.clone()),
            Scope::Namespace(ns) => kube::Api::namespaced(client.clone(), ns),
        }
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    crate::duration::parse(s).map_err(|e| e.to_string())
}

async fn reconcile_backend(obj: Arc<InferenceBackend>, ctx: Arc<Context>) -> Result<Action, Error> {
    if superseded("inferencebackend", obj.as_ref(), &ctx) {
        return Ok(Action::requeue(SUPERSEDED_RECHECK));
    }
    let fut = backend::reconcile(obj.clone(), ctx.clone());
    timed("inferencebackend", obj.as_ref(), &ctx, fut).await
}

async fn reconcile_route(obj: Arc<ModelRoute>, ctx: Arc<Context>) -> Result<Action, Error> {
    if superseded("modelroute", obj.as_ref(), &ctx) {
        return Ok(Action::requeue(SUPERSEDED_RECHECK));
    }
    let fut = route::reconcile(obj.clone(), ctx.clone());
    timed("modelroute", obj.as_ref(), &ctx, fut).await
}

async fn reconcile_tenant(obj: Arc<Tenant>, ctx: Arc<Context>) -> Result<Action, Error> {
    if superseded("tenant", obj.as_ref(), &ctx) {
        return Ok(Action::requeue(SUPERSEDED_RECHECK));
    }
    let fut = tenant::reconcile(obj.clone(), ctx.clone());
    timed("tenant", obj.as_ref(), &ctx, fut).await
}

async fn timed<K: Resource<DynamicType = ()>>(
    kind: &'static str,
    obj: &K,
    ctx: &Context,
    fut: impl Future<Output = Result<Action, Error>>,
) -> Result<Action, Error> {
    let start = Instant::now();
    let result = fut.await;
    ctx.metrics
        .observe(kind, start.elapsed(), result.as_ref().err());
    tracing::debug!(kind = %kind, namespace = %obj.namespace().unwrap_or_default(),
        name = %obj.name_any(), ok = result.is_ok(), "reconciled");
    if result.is_ok() {
        ctx.retries.succeeded(&retry_key(kind, obj));
    }
    result
}

/// After skipping a version already written over: the write's own watch event normally
/// reconciles sooner; this keeps a requeue the skipped reconcile would have asked for.
const SUPERSEDED_RECHECK: Duration = Duration::from_secs(1);

/// Whether `obj` is a version this controller has written over: its write's own watch event
/// reconciles it again.
fn superseded<K: Resource<DynamicType = ()>>(kind: &'static str, obj: &K, ctx: &Context) -> bool {
    let stale = ctx.written.superseded(
        &retry_key(kind, obj),
        obj.meta().resource_version.as_deref(),
    );
    if stale {
        ctx.metrics.superseded(kind);
    }
    stale
}

/// Records that a write made from `obj`'s version succeeded.
fn wrote<K: Resource<DynamicType = ()>>(kind: &'static str, obj: &K, ctx: &Context) {
    ctx.written.record(
        &retry_key(kind, obj),
        obj.meta().resource_version.as_deref(),
    );
}

fn retry_key<K: Resource<DynamicType = ()>>(kind: &str, obj: &K) -> String {
    format!(
        "{kind}/{}/{}",
        obj.namespace().unwrap_or_default(),
        obj.name_any()
    )
}

fn error_policy_backend(obj: Arc<InferenceBackend>, err: &Error, ctx: Arc<Context>) -> Action {
    error_policy("inferencebackend", obj.as_ref(), err, &ctx)
}

fn error_policy_route(obj: Arc<ModelRoute>, err: &Error, ctx: Arc<Context>) -> Action {
    error_policy("modelroute", obj.as_ref(), err, &ctx)
}

fn error_policy_tenant(obj: Arc<Tenant>, err: &Error, ctx: Arc<Context>) -> Action {
    error_policy("tenant", obj.as_ref(), err, &ctx)
}

/// How long a failed reconcile waits, per object: conflicts retry at once from the fresh
/// object; everything else backs off exponentially until the object reconciles again.
fn error_policy<K: Resource<DynamicType = ()>>(
    kind: &str,
    obj: &K,
    err: &Error,
    ctx: &Context,
) -> Action {
    match err {
        Error::MissingNamespace => Action::await_change(),
        Error::Conflict(_) => {
            tracing::info!(name = %obj.name_any(), error = %err, "reconcile superseded");
            Action::requeue(Duration::from_millis(200))
        }
        Error::Kube(_) | Error::CacheStopped | Error::Apply { .. } => {
            let wait = ctx.retries.failed(&retry_key(kind, obj));
            tracing::warn!(name = %obj.name_any(), error = %err, retry_in_ms = wait.as_millis() as u64, "reconcile failed");
            Action::requeue(wait)
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::Cluster => f.write_str("all namespaces"),
            Scope::Namespace(ns) => write!(f, "namespace {ns}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Scope, instance_selector, parse_instance_id};

    #[test]
    fn a_controller_with_an_id_selects_its_label_and_one_without_selects_its_absence() {
        assert_eq!(
            instance_selector(Some("blue")),
            "switchyard.dev/controller-instance-id=blue"
        );
        assert_eq!(
            instance_selector(None),
            "!switchyard.dev/controller-instance-id"
        );
    }

    #[test]
    fn an_instance_id_must_be_a_label_value() {
        assert_eq!(parse_instance_id("blue-2.a_b"), Ok("blue-2.a_b".into()));
        for bad in ["", "-blue", "blue.", "blue green", "a/b", &"x".repeat(64)] {
            let err = parse_instance_id(bad).unwrap_err();
            assert!(err.contains("63 letters"), "{bad}: {err}");
        }
    }

    #[test]
    fn namespaces_named_once_each_become_one_scope_each() {
        let named = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(Scope::from_namespaces(&[]), [Scope::Cluster]);
        assert_eq!(
            Scope::from_namespaces(&named(&["b", "a", "b"])),
            [Scope::Namespace("a".into()), Scope::Namespace("b".into())]
        );
    }
}
