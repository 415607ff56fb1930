//! The HTTP client that carries requests to backends: hyper's pooled HTTP/1.1 client with
//! rustls, and nothing else. It replaced reqwest on the hot path, whose layers cost a
//! proxied request CPU for features a gateway must not use: every response's URL was
//! re-parsed from a string (IDNA and all) for the redirect machinery, and redirects were
//! followed, which would carry a request (and its body) to wherever a backend points.
//! Here a request goes to the URI the snapshot parsed once, and a 3xx is an answer like
//! any other non-2xx.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri, header};
use http_body_util::BodyExt;

use super::translate::Pieces;
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

pub type Response = axum::http::Response<Incoming>;

fn tls_config(
    provider: Arc<rustls::crypto::CryptoProvider>,
    roots: rustls::RootCertStore,
) -> rustls::ClientConfig {
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}
pub type Error = hyper_util::client::legacy::Error;

#[derive(Clone)]
pub struct Upstream {
    /// Shared: a backend's snapshot entry and each attempt at it hold the same pool.
    client: Arc<Client<HttpsConnector<HttpConnector>, PiecesBody>>,
}

/// A request body sent as its pieces, none copied (see [`Pieces`]); its length is known, so
/// it goes with a Content-Length.
pub struct PiecesBody {
    parts: std::collections::VecDeque<Bytes>,
    left: u64,
}

impl From<Pieces> for PiecesBody {
    fn from(p: Pieces) -> Self {
        let parts: std::collections::VecDeque<Bytes> =
            p.0.into_iter().filter(|b| !b.is_empty()).collect();
        let left = parts.iter().map(|b| b.len() as u64).sum();
        Self { parts, left }
    }
}

impl hyper::body::Body for PiecesBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        std::task::Poll::Ready(this.parts.pop_front().map(|b| {
            this.left -= b.len() as u64;
            Ok(hyper::body::Frame::data(b))
        }))
    }

    fn is_end_stream(&self) -> bool {
        self.parts.is_empty()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.left)
    }
}

/// How long dialling a backend may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an idle pooled connection to a backend is kept.
pub const POOL_IDLE: Duration = Duration::from_secs(60);

impl Upstream {
    /// Verifies TLS against the system's roots.
    pub fn new(connect_timeout: Duration, idle: Duration) -> Self {
        // The provider is named here, not taken from the process default, so the client
        // works the same wherever it is built (tests included).
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = match HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(provider.clone())
        {
            Ok(b) => b,
            Err(e) => {
                // Without roots no https backend can be verified; say so once, plainly,
                // rather than refusing to serve in-cluster http backends too.
                tracing::warn!(error = %e, "no system CA certificates found: https backends will fail TLS verification");
                HttpsConnectorBuilder::new()
                    .with_tls_config(tls_config(provider, rustls::RootCertStore::empty()))
            }
        };
        Self::build(tls, connect_timeout, idle)
    }

    /// Verifies TLS against `roots` alone: a backend behind a private CA. Its own pool,
    /// since connections verified against one set of roots are no proof under another.
    pub fn with_roots(roots: rustls::RootCertStore) -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = HttpsConnectorBuilder::new().with_tls_config(tls_config(provider, roots));
        Self::build(tls, CONNECT_TIMEOUT, POOL_IDLE)
    }

    fn build(
        tls: hyper_rustls::HttpsConnectorBuilder<hyper_rustls::builderstates::WantsSchemes>,
        connect_timeout: Duration,
        idle: Duration,
    ) -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        let connector = tls.https_or_http().enable_http1().wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(idle)
            .pool_timer(TokioTimer::new())
            .build(connector);
        Self {
            client: Arc::new(client),
        }
    }

    /// POSTs a JSON body with the given extra headers.
    pub async fn post(
        &self,
        uri: &Uri,
        headers: impl IntoIterator<Item = (HeaderName, HeaderValue)>,
        body: Pieces,
    ) -> Result<Response, Error> {
        let mut req = Request::new(PiecesBody::from(body));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = uri.clone();
        let h: &mut HeaderMap = req.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.extend(headers);
        self.client.request(req).await
    }
}

/// The next chunk of data of a body, skipping trailers; `None` at its end.
pub async fn next_chunk(body: &mut Incoming) -> Option<Result<Bytes, hyper::Error>> {
    loop {
        match body.frame().await? {
            Err(e) => return Some(Err(e)),
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    return Some(Ok(data));
                }
            }
        }
    }
}

/// Whether a failed request timed out (dialling included), rather than being refused.
pub fn is_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return true;
        }
        cur = err.source();
    }
    false
}
