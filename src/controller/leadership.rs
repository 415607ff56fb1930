//! Leader election apart from the reconcilers: its own OS thread, its own single-threaded
//! runtime and its own API client (so its own connection), as controller-runtime gives
//! leader election a separate client. Thousands of creates keep the controller's client
//! and runtime busy while settling; a renewal queued behind them missed its deadline and the
//! controller gave up its lease. Here a renewal waits for nothing the reconcilers do.

use std::thread::JoinHandle;

use kube::Client;
use tokio::sync::{oneshot, watch};

use super::leader::{Config, Elector};

/// Where this replica stands, as the election thread reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    Standby,
    Leading,
    /// Leadership was lost (or the election could not start); why.
    Lost(String),
}

/// The running election. Dropping it without [`Leadership::release`] stops the thread at
/// its next step without handing the lease back.
pub struct Leadership {
    standing: watch::Receiver<Standing>,
    release: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Leadership {
    /// Starts the election on its own thread with a client made from `kube` there.
    pub fn start(kube: kube::Config, cfg: Config) -> std::io::Result<Self> {
        let (tx, standing) = watch::channel(Standing::Standby);
        let (release, release_rx) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("leader-election".into())
            .spawn(move || elect(kube, cfg, tx, release_rx))?;
        Ok(Self {
            standing,
            release: Some(release),
            thread: Some(thread),
        })
    }

    /// Waits until this replica leads; `Err` with the reason if the election ended first.
    pub async fn acquired(&mut self) -> anyhow::Result<()> {
        let now = self
            .standing
            .wait_for(|s| *s != Standing::Standby)
            .await
            .map_err(|_| anyhow::anyhow!("the leader-election thread stopped"))?
            .clone();
        match now {
            Standing::Lost(why) => Err(anyhow::anyhow!(why)),
            _ => Ok(()),
        }
    }

    /// Waits until leadership is lost; returns why.
    pub async fn lost(&mut self) -> anyhow::Error {
        match self
            .standing
            .wait_for(|s| matches!(s, Standing::Lost(_)))
            .await
        {
            Ok(s) => match &*s {
                Standing::Lost(why) => anyhow::anyhow!(why.clone()),
                _ => unreachable!("waited for Lost"),
            },
            Err(_) => anyhow::anyhow!("the leader-election thread stopped"),
        }
    }

    /// The current standing.
    #[cfg(test)]
    pub fn standing(&self) -> Standing {
        self.standing.borrow().clone()
    }

    /// Hands the lease back (if held) and waits for the election thread to end.
    pub async fn release(mut self) {
        if let Some(tx) = self.release.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

fn elect(
    kube: kube::Config,
    cfg: Config,
    standing: watch::Sender<Standing>,
    mut release: oneshot::Receiver<()>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            standing.send_replace(Standing::Lost(format!("leader election: {e}")));
            return;
        }
    };
    runtime.block_on(async move {
        // Made on this runtime: its connections are driven here, not by the reconcilers'.
        let client = match Client::try_from(kube) {
            Ok(c) => c,
            Err(e) => {
                standing.send_replace(Standing::Lost(format!("leader election client: {e}")));
                return;
            }
        };
        let elector = Elector::new(client, cfg);
        tokio::select! {
            () = elector.acquire() => {}
            _ = &mut release => return,
        }
        standing.send_replace(Standing::Leading);
        tokio::select! {
            why = elector.hold() => {
                standing.send_replace(Standing::Lost(format!("{why:#}")));
            }
            _ = &mut release => elector.release().await,
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use axum::Router;
    use axum::extract::{Path, State};
    use axum::http::StatusCode;
    use axum::routing::{get, post};
    use serde_json::{Value, json};

    /// Just enough of the API server for one Lease: get, create, compare-and-swap replace.
    #[derive(Default)]
    struct FakeApi {
        lease: std::sync::Mutex<Option<Value>>,
        version: AtomicUsize,
        writes: AtomicUsize,
    }

    fn not_found() -> (StatusCode, axum::Json<Value>) {
        let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "not found", "reason": "NotFound", "code": 404});
        (StatusCode::NOT_FOUND, axum::Json(body))
    }

    fn store(api: &FakeApi, mut lease: Value) -> Value {
        let rv = api.version.fetch_add(1, Ordering::SeqCst) + 1;
        lease["metadata"]["resourceVersion"] = json!(rv.to_string());
        api.writes.fetch_add(1, Ordering::SeqCst);
        *api.lease.lock().unwrap() = Some(lease.clone());
        lease
    }

    /// Serves the fake API on its own thread and runtime, like a real API server elsewhere.
    fn serve(api: Arc<FakeApi>) -> String {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let path = "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases";
        let app = Router::new()
            .route(
                path,
                post(
                    |State(api): State<Arc<FakeApi>>, body: axum::Json<Value>| async move {
                        if api.lease.lock().unwrap().is_some() {
                            return Err(StatusCode::CONFLICT);
                        }
                        Ok((StatusCode::CREATED, axum::Json(store(&api, body.0))))
                    },
                ),
            )
            .route(
                &format!("{path}/{{name}}"),
                get(|State(api): State<Arc<FakeApi>>| async move {
                    let lease = api.lease.lock().unwrap().clone();
                    lease.map(axum::Json).ok_or_else(not_found)
                })
                .put(
                    |State(api): State<Arc<FakeApi>>,
                     Path((_, _)): Path<(String, String)>,
                     body: axum::Json<Value>| async move {
                        let current = api.lease.lock().unwrap().clone();
                        let rv = |v: &Value| v["metadata"]["resourceVersion"].clone();
                        match current {
                            Some(c) if rv(&c) == rv(&body.0) => Ok(axum::Json(store(&api, body.0))),
                            _ => Err(StatusCode::CONFLICT),
                        }
                    },
                ),
            )
            .with_state(api);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app).await.unwrap();
            });
        });
        format!("http://{addr}")
    }

    fn config(id: &str) -> Config {
        Config {
            namespace: "sys".into(),
            name: "switchyard-controller".into(),
            identity: id.into(),
            lease_duration: Duration::from_secs(4),
            renew_every: Duration::from_millis(300),
            renew_deadline: Duration::from_millis(2500),
        }
    }

    /// The controller's runtime with every worker busy (here: one worker, blocked for 3 s,
    /// longer than the renew deadline) must not stop the lease from being renewed.
    #[test]
    fn renewals_go_on_while_the_reconcilers_runtime_is_saturated() {
        let api = Arc::new(FakeApi::default());
        let url = serve(api.clone());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let kube = kube::Config::new(url.parse().unwrap());
            let mut leadership = Leadership::start(kube, config("a")).unwrap();
            tokio::time::timeout(Duration::from_secs(5), leadership.acquired())
                .await
                .expect("acquired in time")
                .unwrap();
            let before = api.writes.load(Ordering::SeqCst);
            // Reconcilers hogging the controller's only worker thread.
            tokio::spawn(async { std::thread::sleep(Duration::from_secs(3)) })
                .await
                .unwrap();
            let renewed = api.writes.load(Ordering::SeqCst) - before;
            assert!(
                renewed >= 5,
                "only {renewed} renewals in 3 s at one per 300 ms"
            );
            assert_eq!(leadership.standing(), Standing::Leading);
            leadership.release().await;
        });
        let lease = api.lease.lock().unwrap().clone().unwrap();
        assert!(
            lease["spec"]["holderIdentity"].is_null(),
            "handed back on release: {lease}"
        );
    }

    #[test]
    fn losing_the_lease_is_reported_with_the_reason() {
        let api = Arc::new(FakeApi::default());
        let url = serve(api.clone());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut leadership =
                Leadership::start(kube::Config::new(url.parse().unwrap()), config("a")).unwrap();
            leadership.acquired().await.unwrap();
            // Another replica takes the lease (as after a partition).
            {
                let mut slot = api.lease.lock().unwrap();
                let lease = slot.as_mut().unwrap();
                lease["spec"]["holderIdentity"] = json!("b");
                lease["metadata"]["resourceVersion"] = json!("999");
            }
            let why = tokio::time::timeout(Duration::from_secs(5), leadership.lost())
                .await
                .expect("lost in time");
            assert!(
                why.to_string().contains("taken by another replica"),
                "{why}"
            );
        });
    }
}
