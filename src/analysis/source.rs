//! Where measurements come from: a [`Source`] answers one PromQL query with one number.

use std::future::Future;
use std::time::Duration;

use prometheus_http_query::{Client, Error as PromError, response::Data};

/// Longest a single query may take, connecting included, before Prometheus counts as
/// unreachable for this analysis.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Error text quoted into status is cut to this many characters.
const MAX_MESSAGE: usize = 300;

/// Why a query produced no number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// Prometheus could not be asked or could not answer: connection refused, timeout, an
    /// HTTP error from a proxy, Prometheus overloaded or unavailable. Nothing about the
    /// backends can be concluded.
    #[error("{0}")]
    Unreachable(String),
    /// Prometheus answered, but rejected or could not evaluate this query (bad syntax, an
    /// execution error, more than one series).
    #[error("{0}")]
    Query(String),
    /// The URL to reach Prometheus is not usable.
    #[error("invalid Prometheus URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
}

/// Answers instant PromQL queries with a single number.
pub trait Source {
    /// `Ok(None)` for an empty result. NaN and ±Inf are returned as `Some`; the evaluator
    /// treats them as no data.
    fn query(&self, promql: &str) -> impl Future<Output = Result<Option<f64>, SourceError>> + Send;
}

/// A Prometheus HTTP API (`/api/v1/query`).
#[derive(Clone)]
pub struct Prometheus {
    client: Client,
    timeout: Duration,
}

impl std::fmt::Debug for Prometheus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prometheus")
            .field("url", &self.client.base_url().as_str())
            .finish()
    }
}

impl Prometheus {
    /// A client for the Prometheus at `url` (e.g. `http://prometheus.monitoring:9090`). Each
    /// query times out after [`QUERY_TIMEOUT`]. Proxy environment variables are ignored:
    /// Prometheus is expected inside the cluster.
    pub fn new(url: &str) -> Result<Self, SourceError> {
        Self::with_timeout(url, QUERY_TIMEOUT)
    }

    /// Like [`Prometheus::new`], with a different limit on each query.
    pub fn with_timeout(url: &str, timeout: Duration) -> Result<Self, SourceError> {
        let invalid = |reason: String| SourceError::InvalidUrl {
            url: url.to_owned(),
            reason,
        };
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT.min(timeout))
            .timeout(timeout)
            .build()
            .map_err(|e| invalid(chain(&e)))?;
        let client = Client::from(http, url).map_err(|e| invalid(chain(&e)))?;
        match client.base_url().scheme() {
            "http" | "https" => Ok(Self { client, timeout }),
            other => Err(invalid(format!("scheme {other:?} is not http or https"))),
        }
    }

    /// The base URL queries go to.
    pub fn url(&self) -> &str {
        self.client.base_url().as_str()
    }
}

impl Source for Prometheus {
    fn query(&self, promql: &str) -> impl Future<Output = Result<Option<f64>, SourceError>> + Send {
        let request = self.client.query(promql);
        let timeout = self.timeout;
        async move {
            let result = request.get().await.map_err(|e| classify(e, timeout))?;
            single_value(result.data())
        }
    }
}

/// One number out of an instant query's result.
fn single_value(data: &Data) -> Result<Option<f64>, SourceError> {
    match data {
        Data::Scalar(sample) => Ok(Some(sample.value())),
        Data::Vector(series) => match series.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one.sample().value())),
            many => Err(SourceError::Query(format!(
                "query returned {} series; aggregate it to one, e.g. with sum(...)",
                many.len()
            ))),
        },
        Data::Matrix(series) => Err(SourceError::Query(format!(
            "query returned a range vector ({} series); it must return a single number",
            series.len()
        ))),
    }
}

/// Sorts the client's errors into "this query is wrong" and "Prometheus cannot be used".
fn classify(e: PromError, timeout: Duration) -> SourceError {
    match &e {
        PromError::Prometheus(p) if p.is_bad_data() || p.is_execution() || p.is_not_found() => {
            SourceError::Query(truncate(&p.to_string()))
        }
        PromError::Prometheus(p) => SourceError::Unreachable(truncate(&format!("Prometheus {p}"))),
        PromError::Client(c) => {
            let message = match c.inner() {
                Some(r) if r.is_timeout() => {
                    format!("no answer within {}", crate::duration::format(timeout))
                }
                Some(r) if r.is_connect() => format!("cannot connect: {}", root_cause(r)),
                Some(r) => match r.status() {
                    Some(status) => format!("HTTP {status}, not a Prometheus API response"),
                    None => format!("{c}: {}", root_cause(r)),
                },
                None => c.to_string(),
            };
            SourceError::Unreachable(truncate(&message))
        }
        _ => SourceError::Unreachable(truncate(&chain(&e))),
    }
}

/// The innermost cause, which names what went wrong (`Connection refused (os error 111)`)
/// without reqwest's own text, which repeats the URL and with it the whole query.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

fn truncate(s: &str) -> String {
    match s.char_indices().nth(MAX_MESSAGE) {
        Some((at, _)) => format!("{}...", &s[..at]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A canned answer: HTTP status, content type, body.
    fn answer(query: &str) -> (u16, &'static str, String) {
        let vector = |samples: &[&str]| {
            let result: Vec<String> = samples
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    format!(r#"{{"metric":{{"backend":"b{i}"}},"value":[1700000000.123,"{v}"]}}"#)
                })
                .collect();
            format!(
                r#"{{"status":"success","data":{{"resultType":"vector","result":[{}]}}}}"#,
                result.join(",")
            )
        };
        let json = "application/json";
        match query {
            "one" => (200, json, vector(&["0.25"])),
            "empty" => (200, json, vector(&[])),
            "scalar" => (
                200,
                json,
                r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"42"]}}"#
                    .into(),
            ),
            "nan" => (200, json, vector(&["NaN"])),
            "inf" => (200, json, vector(&["+Inf"])),
            "two" => (200, json, vector(&["1", "2"])),
            "matrix" => (
                200,
                json,
                r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1700000000,"1"]]}]}}"#
                    .into(),
            ),
            "bad" => (
                400,
                json,
                r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#.into(),
            ),
            "unavailable" => (
                503,
                json,
                r#"{"status":"error","errorType":"unavailable","error":"too many queries"}"#
                    .into(),
            ),
            _ => (502, "text/html", "<html>bad gateway</html>".into()),
        }
    }

    /// Serves canned Prometheus answers on a free local port, keyed by the `query` parameter
    /// (plain words, so no URL decoding is needed). Returns the base URL.
    async fn fake_prometheus() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&buf);
                    let target = head.split(' ').nth(1).unwrap_or("");
                    let (status, ctype, body) = match target.split_once('?') {
                        Some(("/api/v1/query", params)) => {
                            let query = params
                                .split('&')
                                .find_map(|p| p.strip_prefix("query="))
                                .unwrap_or("");
                            answer(query)
                        }
                        _ => (404, "text/plain", "not found".into()),
                    };
                    let response = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn prometheus_answers_map_to_values_and_errors() {
        let prom = Prometheus::new(&fake_prometheus().await).unwrap();
        assert_eq!(prom.query("one").await, Ok(Some(0.25)));
        assert_eq!(prom.query("empty").await, Ok(None));
        assert_eq!(prom.query("scalar").await, Ok(Some(42.0)));
        assert!(prom.query("nan").await.unwrap().unwrap().is_nan());
        assert_eq!(prom.query("inf").await, Ok(Some(f64::INFINITY)));
        assert_eq!(
            prom.query("two").await,
            Err(SourceError::Query(
                "query returned 2 series; aggregate it to one, e.g. with sum(...)".into()
            ))
        );
        assert!(matches!(
            prom.query("matrix").await,
            Err(SourceError::Query(m)) if m.starts_with("query returned a range vector")
        ));
        assert_eq!(
            prom.query("bad").await,
            Err(SourceError::Query("bad_data: parse error".into()))
        );
        assert_eq!(
            prom.query("unavailable").await,
            Err(SourceError::Unreachable(
                "Prometheus unavailable: too many queries".into()
            ))
        );
        assert!(matches!(
            prom.query("proxy").await,
            Err(SourceError::Unreachable(m)) if m.contains("502")
        ));
    }

    #[tokio::test]
    async fn a_closed_port_is_unreachable() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let prom = Prometheus::new(&format!("http://{addr}")).unwrap();
        let err = prom.query("one").await.unwrap_err();
        match err {
            SourceError::Unreachable(m) => {
                assert!(m.starts_with("cannot connect"), "{m}");
                assert!(!m.contains("query="), "the URL is not quoted: {m}");
            }
            other => panic!("expected unreachable, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_silent_server_times_out_as_unreachable() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Accepts connections and never answers.
        let server = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                open.push(stream);
            }
        });
        let prom = Prometheus::with_timeout(&format!("http://{addr}"), Duration::from_millis(200))
            .unwrap();
        assert_eq!(
            prom.query("one").await,
            Err(SourceError::Unreachable("no answer within 200ms".into()))
        );
        server.abort();
    }

    #[test]
    fn bad_urls_are_rejected() {
        assert!(matches!(
            Prometheus::new("not a url"),
            Err(SourceError::InvalidUrl { .. })
        ));
        assert!(matches!(
            Prometheus::new("ftp://prometheus:9090"),
            Err(SourceError::InvalidUrl { .. })
        ));
        let ok = Prometheus::new("http://prometheus.monitoring:9090").unwrap();
        assert_eq!(ok.url(), "http://prometheus.monitoring:9090/");
    }

    #[test]
    fn long_messages_are_cut() {
        let long = "x".repeat(1000);
        assert_eq!(truncate(&long).len(), MAX_MESSAGE + 3);
        assert_eq!(truncate("short"), "short");
    }
}
