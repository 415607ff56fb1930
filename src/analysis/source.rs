//! Where measurements come from: a [`Source`] answers one PromQL query with one number.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use serde::Deserialize;
use serde_json::Value;

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
    /// Prometheus answered with warnings (e.g. a federated or remote-read source failed), so
    /// the number may be computed from part of the data: a missing error series would read as
    /// a 0% error rate. Never judged.
    #[error("Prometheus returned partial data: {0}")]
    Partial(String),
    /// The URL to reach Prometheus is not usable.
    #[error("invalid Prometheus URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
}

/// Answers instant PromQL queries with a single number.
pub trait Source {
    /// Evaluates `promql` at the instant `at` (every query of one analysis uses the same
    /// instant, so they describe the same window). `Ok(None)` for an empty result. NaN and
    /// ±Inf are returned as `Some`; the evaluator treats them as no data.
    fn query(
        &self,
        promql: &str,
        at: Timestamp,
    ) -> impl Future<Output = Result<Option<f64>, SourceError>> + Send;
}

/// A Prometheus HTTP API (`/api/v1/query`, `/api/v1/status/config`).
#[derive(Clone)]
pub struct Prometheus {
    http: reqwest::Client,
    base: reqwest::Url,
    timeout: Duration,
}

impl std::fmt::Debug for Prometheus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prometheus")
            .field("url", &self.base.as_str())
            .finish()
    }
}

/// The envelope of every Prometheus API answer.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Value,
    #[serde(default)]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    warnings: Vec<String>,
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
        let mut base = reqwest::Url::parse(url).map_err(|e| invalid(e.to_string()))?;
        match base.scheme() {
            "http" | "https" => {}
            other => return Err(invalid(format!("scheme {other:?} is not http or https"))),
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT.min(timeout))
            .timeout(timeout)
            .build()
            .map_err(|e| invalid(chain(&e)))?;
        Ok(Self {
            http,
            base,
            timeout,
        })
    }

    /// The base URL queries go to.
    pub fn url(&self) -> &str {
        self.base.as_str()
    }

    /// Prometheus' global scrape interval, from its configuration API. Analysis windows are
    /// at least four of them, so `rate()` always has samples to work with.
    pub async fn scrape_interval(&self) -> Result<Duration, SourceError> {
        let data = self.get("api/v1/status/config", &[]).await?;
        let yaml = data
            .get("yaml")
            .and_then(Value::as_str)
            .ok_or_else(|| SourceError::Query("configuration answer has no yaml".into()))?;
        scrape_interval_of(yaml)
    }

    /// One GET against the API; the answer's `data`, or why there is none.
    async fn get(&self, path: &str, params: &[(&str, String)]) -> Result<Value, SourceError> {
        let url = self
            .base
            .join(path)
            .map_err(|e| SourceError::Unreachable(e.to_string()))?;
        let resp = self
            .http
            .get(url)
            .query(params)
            .send()
            .await
            .map_err(|e| transport(&e, self.timeout))?;
        let status = resp.status();
        let json = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !json {
            return Err(SourceError::Unreachable(format!(
                "HTTP {status}, not a Prometheus API response"
            )));
        }
        let envelope: Envelope = resp.json().await.map_err(|e| {
            SourceError::Unreachable(truncate(&format!("unreadable answer: {}", root_cause(&e))))
        })?;
        if envelope.status != "success" {
            let kind = envelope.error_type.unwrap_or_default();
            let text = truncate(&format!("{kind}: {}", envelope.error.unwrap_or_default()));
            // Rejections of the query itself, as opposed to a Prometheus that cannot answer.
            return Err(match kind.as_str() {
                "bad_data" | "execution" | "not_found" => SourceError::Query(text),
                _ => SourceError::Unreachable(truncate(&format!("Prometheus {text}"))),
            });
        }
        if !envelope.warnings.is_empty() {
            return Err(SourceError::Partial(truncate(
                &envelope.warnings.join("; "),
            )));
        }
        Ok(envelope.data)
    }
}

impl Source for Prometheus {
    fn query(
        &self,
        promql: &str,
        at: Timestamp,
    ) -> impl Future<Output = Result<Option<f64>, SourceError>> + Send {
        let params = [
            ("query", promql.to_owned()),
            (
                "time",
                format!("{:.3}", at.as_millisecond() as f64 / 1000.0),
            ),
        ];
        async move { single_value(&self.get("api/v1/query", &params).await?) }
    }
}

/// One series of a query's answer: its labels and its samples as (Unix seconds, value).
#[derive(Debug, Clone, PartialEq)]
pub struct Labelled {
    pub labels: std::collections::BTreeMap<String, String>,
    pub points: Vec<(f64, f64)>,
}

impl Prometheus {
    /// Every series an instant query returns at `at`, each with its one sample.
    pub async fn query_vector(
        &self,
        promql: &str,
        at: Timestamp,
    ) -> Result<Vec<Labelled>, SourceError> {
        let params = [("query", promql.to_owned()), ("time", seconds(at))];
        labelled(&self.get("api/v1/query", &params).await?)
    }

    /// Every series a range query returns between `start` and `end`, sampled every `step`.
    pub async fn query_range(
        &self,
        promql: &str,
        start: Timestamp,
        end: Timestamp,
        step: Duration,
    ) -> Result<Vec<Labelled>, SourceError> {
        let params = [
            ("query", promql.to_owned()),
            ("start", seconds(start)),
            ("end", seconds(end)),
            ("step", format!("{:.3}", step.as_secs_f64())),
        ];
        labelled(&self.get("api/v1/query_range", &params).await?)
    }
}

fn seconds(at: Timestamp) -> String {
    format!("{:.3}", at.as_millisecond() as f64 / 1000.0)
}

/// The series of an instant (`vector`, `scalar`) or range (`matrix`) answer. Samples are
/// `[time, "value"]`; NaN and ±Inf are kept for the caller to skip.
fn labelled(data: &Value) -> Result<Vec<Labelled>, SourceError> {
    let sample = |s: &Value| -> Result<(f64, f64), SourceError> {
        let t = s.get(0).and_then(Value::as_f64);
        let v = s
            .get(1)
            .and_then(Value::as_str)
            .and_then(|v| v.parse().ok());
        t.zip(v)
            .ok_or_else(|| SourceError::Query(format!("unreadable sample {s}")))
    };
    let result = data.get("result").unwrap_or(&Value::Null);
    let series = |r: &Value, points: Vec<(f64, f64)>| Labelled {
        labels: r
            .get("metric")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default(),
        points,
    };
    let list = || result.as_array().map(Vec::as_slice).unwrap_or_default();
    match data.get("resultType").and_then(Value::as_str) {
        Some("scalar") => Ok(vec![series(&Value::Null, vec![sample(result)?])]),
        Some("vector") => list()
            .iter()
            .map(|r| {
                Ok(series(
                    r,
                    vec![sample(r.get("value").unwrap_or(&Value::Null))?],
                ))
            })
            .collect(),
        Some("matrix") => list()
            .iter()
            .map(|r| {
                let points = r
                    .get("values")
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .map(sample)
                    .collect::<Result<_, _>>()?;
                Ok(series(r, points))
            })
            .collect(),
        other => Err(SourceError::Query(format!(
            "unexpected result type {other:?}"
        ))),
    }
}

/// The smallest scrape interval that matters: the global one (jobs that override it are not
/// known to scrape the gateway). Prometheus' own default is 1m when the config omits it.
fn scrape_interval_of(yaml: &str) -> Result<Duration, SourceError> {
    let config: Value = serde_yaml::from_str(yaml)
        .map_err(|e| SourceError::Query(format!("unreadable configuration: {e}")))?;
    let Some(text) = config
        .pointer("/global/scrape_interval")
        .and_then(Value::as_str)
    else {
        return Ok(Duration::from_secs(60));
    };
    prometheus_duration(text)
        .ok_or_else(|| SourceError::Query(format!("unreadable scrape_interval {text:?}")))
}

/// A Prometheus duration (`1m`, `15s`, `1m30s`, `500ms`, `1h`, `1d`, `1w`, `1y`).
fn prometheus_duration(text: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let units = [
            ("ms", 1),
            ("s", 1_000),
            ("m", 60_000),
            ("h", 3_600_000),
            ("d", 86_400_000),
            ("w", 604_800_000),
            ("y", 31_536_000_000),
        ];
        let (unit, ms) = units.iter().find(|(u, _)| rest.starts_with(u))?;
        rest = &rest[unit.len()..];
        total += Duration::from_millis(n.checked_mul(*ms)?);
    }
    (!total.is_zero()).then_some(total)
}

/// One number out of an instant query's `data`.
fn single_value(data: &Value) -> Result<Option<f64>, SourceError> {
    let number = |sample: &Value| -> Result<f64, SourceError> {
        sample
            .get(1)
            .and_then(Value::as_str)
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or_else(|| SourceError::Query(format!("unreadable sample {sample}")))
    };
    let result = data.get("result").unwrap_or(&Value::Null);
    match data.get("resultType").and_then(Value::as_str) {
        Some("scalar") => number(result).map(Some),
        Some("vector") => match result.as_array().map(Vec::as_slice) {
            None | Some([]) => Ok(None),
            Some([one]) => number(one.get("value").unwrap_or(&Value::Null)).map(Some),
            Some(many) => Err(SourceError::Query(format!(
                "query returned {} series; aggregate it to one, e.g. with sum(...)",
                many.len()
            ))),
        },
        Some("matrix") => Err(SourceError::Query(format!(
            "query returned a range vector ({} series); it must return a single number",
            result.as_array().map_or(0, Vec::len)
        ))),
        other => Err(SourceError::Query(format!(
            "unexpected result type {other:?}"
        ))),
    }
}

/// Why a request got no answer at all.
fn transport(e: &reqwest::Error, timeout: Duration) -> SourceError {
    let message = if e.is_timeout() {
        format!("no answer within {}", crate::duration::format(timeout))
    } else if e.is_connect() {
        format!("cannot connect: {}", root_cause(e))
    } else {
        root_cause(e)
    };
    SourceError::Unreachable(truncate(&message))
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

    #[test]
    fn range_and_instant_answers_become_labelled_series() {
        let matrix: Value = serde_json::from_str(
            r#"{"resultType":"matrix","result":[
                {"metric":{"backend":"llama"},"values":[[1700000000,"0.5"],[1700000002.5,"NaN"]]},
                {"metric":{"backend":"openai"},"values":[]}]}"#,
        )
        .unwrap();
        let got = labelled(&matrix).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].labels["backend"], "llama");
        assert_eq!(got[0].points[0], (1_700_000_000.0, 0.5));
        assert!(got[0].points[1].1.is_nan() && got[0].points[1].0 == 1_700_000_002.5);
        assert!(got[1].points.is_empty());
        let vector: Value = serde_json::from_str(
            r#"{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"3"]}]}"#,
        )
        .unwrap();
        assert_eq!(
            labelled(&vector).unwrap()[0].points,
            [(1_700_000_000.0, 3.0)]
        );
        let bad: Value =
            serde_json::from_str(r#"{"resultType":"matrix","result":[{"values":[[1,2]]}]}"#)
                .unwrap();
        assert!(matches!(labelled(&bad), Err(SourceError::Query(_))));
    }
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
            "warned" => (
                200,
                json,
                r#"{"status":"success","data":{"resultType":"vector","result":[]},"warnings":["remote read from store-2 failed"]}"#.into(),
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
                            let param = |name: &str| {
                                params
                                    .split('&')
                                    .find_map(|p| p.strip_prefix(name))
                                    .unwrap_or("")
                                    .to_owned()
                            };
                            // Every query must name its evaluation instant.
                            if param("time=") != "1700000000.250" {
                                (400, "application/json", r#"{"status":"error","errorType":"bad_data","error":"wrong time"}"#.into())
                            } else {
                                answer(&param("query="))
                            }
                        }
                        _ if target == "/api/v1/status/config" => (
                            200,
                            "application/json",
                            r#"{"status":"success","data":{"yaml":"global:\n  scrape_interval: 1m30s\n  evaluation_interval: 1m\nscrape_configs: []\n"}}"#.into(),
                        ),
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

    fn at() -> Timestamp {
        Timestamp::from_millisecond(1_700_000_000_250).unwrap()
    }

    #[tokio::test]
    async fn warnings_are_partial_data_never_a_value() {
        let prom = Prometheus::new(&fake_prometheus().await).unwrap();
        assert_eq!(
            prom.query("warned", at()).await,
            Err(SourceError::Partial(
                "remote read from store-2 failed".into()
            ))
        );
    }

    #[tokio::test]
    async fn the_scrape_interval_comes_from_the_configuration_api() {
        let prom = Prometheus::new(&fake_prometheus().await).unwrap();
        assert_eq!(prom.scrape_interval().await, Ok(Duration::from_secs(90)));
        assert_eq!(
            scrape_interval_of("scrape_configs: []\n"),
            Ok(Duration::from_secs(60)),
            "Prometheus' default"
        );
        assert_eq!(prometheus_duration("15s"), Some(Duration::from_secs(15)));
        assert_eq!(prometheus_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(prometheus_duration("x"), None);
    }

    #[tokio::test]
    async fn prometheus_answers_map_to_values_and_errors() {
        let prom = Prometheus::new(&fake_prometheus().await).unwrap();
        assert_eq!(prom.query("one", at()).await, Ok(Some(0.25)));
        assert_eq!(prom.query("empty", at()).await, Ok(None));
        assert_eq!(prom.query("scalar", at()).await, Ok(Some(42.0)));
        assert!(prom.query("nan", at()).await.unwrap().unwrap().is_nan());
        assert_eq!(prom.query("inf", at()).await, Ok(Some(f64::INFINITY)));
        assert_eq!(
            prom.query("two", at()).await,
            Err(SourceError::Query(
                "query returned 2 series; aggregate it to one, e.g. with sum(...)".into()
            ))
        );
        assert!(matches!(
            prom.query("matrix", at()).await,
            Err(SourceError::Query(m)) if m.starts_with("query returned a range vector")
        ));
        assert_eq!(
            prom.query("bad", at()).await,
            Err(SourceError::Query("bad_data: parse error".into()))
        );
        assert_eq!(
            prom.query("unavailable", at()).await,
            Err(SourceError::Unreachable(
                "Prometheus unavailable: too many queries".into()
            ))
        );
        assert!(matches!(
            prom.query("proxy", at()).await,
            Err(SourceError::Unreachable(m)) if m.contains("502")
        ));
    }

    #[tokio::test]
    async fn a_closed_port_is_unreachable() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let prom = Prometheus::new(&format!("http://{addr}")).unwrap();
        let err = prom.query("one", at()).await.unwrap_err();
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
            prom.query("one", at()).await,
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
