//! `switchyard gateway`: the data plane. It serves from reflector caches so that no request
//! waits on the API server.

mod models;
pub mod translate;

use std::net::SocketAddr;

use futures::StreamExt;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client};

use crate::api::ModelRoute;
use crate::serve::{self, Readiness};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Address applications call (OpenAI- and Anthropic-compatible API).
    #[arg(long, env = "SWITCHYARD_LISTEN_ADDR", default_value = "127.0.0.1:8000")]
    pub listen_addr: SocketAddr,
    /// Namespace whose routes this gateway serves; all namespaces when unset.
    #[arg(long, env = "SWITCHYARD_NAMESPACE")]
    pub namespace: Option<String>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let client = Client::try_default().await?;
    let routes: Api<ModelRoute> = match &args.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let (store, writer) = reflector::store();
    let watch = watcher(routes, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::warn!(error = %e, "route watch error; retrying");
            }
        });
    tokio::spawn(watch);

    let registry = prometheus::Registry::new();
    let ready = Readiness::default();
    {
        let (store, ready) = (store.clone(), ready.clone());
        tokio::spawn(async move {
            if store.wait_until_ready().await.is_ok() {
                tracing::info!("route cache synced");
                ready.set(true);
            }
        });
    }
    let app = models::router(store).merge(serve::ops_router(registry, ready.clone()));
    let shutdown = async move {
        serve::shutdown_signal().await;
        ready.set(false);
    };
    serve::serve(args.listen_addr, app, shutdown).await
}
