//! The operational HTTP endpoints every component serves: `/healthz`, `/readyz` and
//! `/metrics`, plus graceful shutdown on SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::{Router, routing::get};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use prometheus::{Encoder, Registry, TextEncoder};

/// Whether the component is ready for traffic; flipped once caches have synced, and back
/// when shutting down so load balancers stop sending before the listener closes.
#[derive(Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }

    pub fn get(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

#[derive(Clone)]
struct OpsState {
    registry: Registry,
    ready: Readiness,
}

/// Routes for `/healthz`, `/readyz` and `/metrics`, to be merged into a component's router.
pub fn ops_router(registry: Registry, ready: Readiness) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(OpsState { registry, ready })
}

async fn readyz(State(state): State<OpsState>) -> impl IntoResponse {
    if state.ready.get() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

async fn metrics(State(state): State<OpsState>) -> impl IntoResponse {
    let mut body = Vec::new();
    match TextEncoder::new().encode(&state.registry.gather(), &mut body) {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
            body,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Longest a client may take to send a request's headers by default; then its connection
/// is closed (the slow-headers attack holds a connection with a byte every few seconds
/// otherwise). hyper starts this timer whenever it waits for a request, so it also closes
/// keep-alive connections idle for as long (nginx: 60 s for headers, 75 s idle).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `router` on `addr` until `shutdown` resolves, then drains in-flight requests.
///
/// HTTP/1.1 straight on hyper's connection builder rather than `axum::serve`, which adds
/// protocol detection for HTTP/2, upgrade support and a per-connection select on every wake
/// to each request, and sets no timer, so no header read timeout.
pub async fn serve(
    addr: SocketAddr,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "listening");
    serve_on(listener, router, Limits::default(), shutdown).await
}

/// The largest request head (request line and headers) read from a client.
pub const MAX_HEAD: usize = 64 * 1024;

/// What one listener allows its clients.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// See [`HEADER_READ_TIMEOUT`].
    pub header_read_timeout: Duration,
    /// Connections open at once; at the cap the listener stops accepting until one closes
    /// (new ones wait in the kernel's backlog), so a flood of idle connections cannot take
    /// every file descriptor.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: HEADER_READ_TIMEOUT,
            max_connections: 10_000,
        }
    }
}

/// `serve` on a bound listener, with the header read timeout given.
pub async fn serve_on<S>(
    listener: tokio::net::TcpListener,
    router: S,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()>
where
    S: tower_service::Service<
            axum::http::Request<hyper::body::Incoming>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // A request's head (line and headers) may take 64 KiB at most, then 431; hyper's
        // default lets a client hold 400 KiB of headers per connection. nginx allows 32 KiB.
        // hyper checks this while a head is incomplete; a head that arrives whole in one
        // read is checked by the gateway's API service.
        .max_header_size(MAX_HEAD)
        .keep_alive(true);
    let graceful = GracefulShutdown::new();
    let open = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = open.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was
                    // accepted: wait a little instead of spinning on the error.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Streamed answers are many small writes; without TCP_NODELAY each waits ~40 ms for
        // the client's delayed ACK (measured: 44 ms p50 per streamed request before).
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let conn =
            http.serve_connection(TokioIo::new(tcp), TowerToHyperService::new(router.clone()));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    // Stop listening first, then let every connection finish what it is serving.
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Resolves on the first SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received");
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    async fn started(header_read_timeout: Duration) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = ops_router(Registry::new(), Readiness::default());
        tokio::spawn(serve_on(
            listener,
            router,
            Limits {
                header_read_timeout,
                max_connections: 2,
            },
            std::future::pending(),
        ));
        addr
    }

    /// A client that trickles its headers (slowloris) loses its connection once the header
    /// read timeout has passed, however often it sends a byte.
    #[tokio::test]
    async fn a_client_slow_to_send_its_headers_is_disconnected() {
        let addr = started(Duration::from_millis(300)).await;
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let t = Instant::now();
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 256];
        let closed = loop {
            assert!(t.elapsed() < Duration::from_secs(5), "still connected");
            // A header line every 100 ms: never idle, never done.
            let _ = tcp.write_all(b"x-a: b\r\n").await;
            match tokio::time::timeout(Duration::from_millis(100), tcp.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break t.elapsed(),
                // hyper answers 408 before closing.
                Ok(Ok(n)) => {
                    assert!(buf[..n].starts_with(b"HTTP/1.1 408"), "{:?}", &buf[..n]);
                }
                Err(_) => {}
            }
        };
        assert!(closed >= Duration::from_millis(300), "{closed:?}");
    }

    /// A client that sends its request at once is served, and its keep-alive connection
    /// stays usable while it is not idle for longer than the timeout (hyper starts the
    /// header timer when it waits for the next request, so it is the idle timeout too).
    #[tokio::test]
    async fn a_prompt_client_is_served_on_a_kept_alive_connection() {
        let addr = started(Duration::from_millis(300)).await;
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        for _ in 0..2 {
            tcp.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
                .await
                .unwrap();
            let mut buf = [0u8; 256];
            let n = tcp.read(&mut buf).await.unwrap();
            assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
            assert!(buf[..n].ends_with(b"ok"), "{:?}", &buf[..n]);
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
        let mut buf = [0u8; 256];
        let n = tcp.read(&mut buf).await.unwrap_or(0);
        assert!(
            n == 0 || buf[..n].starts_with(b"HTTP/1.1 408"),
            "{:?}",
            &buf[..n]
        );
    }

    /// At the connection cap the listener waits: a third client is accepted only once one
    /// of the two open connections closes.
    #[tokio::test]
    async fn past_the_connection_cap_new_clients_wait_for_a_free_slot() {
        let addr = started(Duration::from_secs(5)).await;
        let a = tokio::net::TcpStream::connect(addr).await.unwrap();
        let _b = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        c.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 256];
        assert!(
            tokio::time::timeout(Duration::from_millis(300), c.read(&mut buf))
                .await
                .is_err(),
            "served past the cap"
        );
        drop(a);
        let n = tokio::time::timeout(Duration::from_secs(2), c.read(&mut buf))
            .await
            .expect("served once a slot is free")
            .unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
    }
}
