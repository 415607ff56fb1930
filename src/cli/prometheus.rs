//! The Prometheus a `kubectl switchyard` command reads (`report`, `cost`): which one, and a
//! small client for instant and range queries over the analysis' own HTTP client.

use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::jiff::Timestamp;

use crate::analysis::{Labelled, Prometheus};
use crate::api::{ModelRouteSpec, ModelRouteStatus};

/// The environment variable that names the Prometheus when `--prometheus-url` does not.
pub const ENV: &str = "SWITCHYARD_PROMETHEUS_URL";

/// Range queries return at most this many points per series (Prometheus refuses more than
/// 11,000); a longer range gets a coarser step.
const MAX_POINTS: f64 = 600.0;

/// Where the URL came from, so an error can say which setting to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Flag,
    Env,
    Route,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Origin::Flag => "--prometheus-url",
            Origin::Env => ENV,
            Origin::Route => "the route's spec.rollout.analysis.prometheusUrl",
        })
    }
}

/// The Prometheus to ask: `--prometheus-url`, else `$SWITCHYARD_PROMETHEUS_URL`, else the
/// one the route's migrations are judged by. An empty value counts as unset.
pub fn resolve(
    flag: Option<&str>,
    env: Option<&str>,
    route: Option<&str>,
) -> anyhow::Result<(String, Origin)> {
    let set = |v: Option<&str>| v.map(str::trim).filter(|v| !v.is_empty()).map(String::from);
    if let Some(url) = set(flag) {
        return Ok((url, Origin::Flag));
    }
    if let Some(url) = set(env) {
        return Ok((url, Origin::Env));
    }
    if let Some(url) = set(route) {
        return Ok((url, Origin::Route));
    }
    anyhow::bail!(
        "no Prometheus to ask: pass --prometheus-url URL (e.g. http://prometheus.monitoring:9090), \
         set {ENV}, or set spec.rollout.analysis.prometheusUrl on the route"
    )
}

/// The Prometheus a route names for its migrations (the running one's snapshot first), as
/// the controller reads it.
pub fn route_url(spec: &ModelRouteSpec, status: &ModelRouteStatus) -> Option<String> {
    crate::migration::settings(spec, status)
        .analysis
        .prometheus_url
}

/// Instant and range queries against one Prometheus, with errors that name it.
#[derive(Debug, Clone)]
pub struct Client {
    prometheus: Prometheus,
    origin: Origin,
}

impl Client {
    /// A client for `url`; `origin` says where the URL was set, for error messages.
    pub fn new(url: &str, origin: Origin) -> anyhow::Result<Self> {
        let prometheus = Prometheus::new(url).with_context(|| format!("(from {origin})"))?;
        Ok(Self { prometheus, origin })
    }

    pub fn url(&self) -> &str {
        self.prometheus.url()
    }

    fn context(&self) -> String {
        format!("Prometheus {} (from {})", self.url(), self.origin)
    }

    /// Every series of `promql` now.
    pub async fn instant(&self, promql: &str) -> anyhow::Result<Vec<Labelled>> {
        self.prometheus
            .query_vector(promql, Timestamp::now())
            .await
            .with_context(|| format!("{}: {promql}", self.context()))
    }

    /// Every series of `promql` between `start` and `end`, every `step`.
    pub async fn range(
        &self,
        promql: &str,
        start: Timestamp,
        end: Timestamp,
        step: Duration,
    ) -> anyhow::Result<Vec<Labelled>> {
        self.prometheus
            .query_range(promql, start, end, step)
            .await
            .with_context(|| format!("{}: {promql}", self.context()))
    }

    /// Prometheus' global scrape interval (rate windows need several of them).
    pub async fn scrape_interval(&self) -> anyhow::Result<Duration> {
        self.prometheus
            .scrape_interval()
            .await
            .with_context(|| self.context())
    }
}

/// A step for a range of `range`: whole seconds, at least one, at most [`MAX_POINTS`] points.
pub fn step_for(range: Duration) -> Duration {
    Duration::from_secs((range.as_secs_f64() / MAX_POINTS).ceil().max(1.0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_wins_then_the_environment_then_the_route() {
        let r = |f, e, s| resolve(f, e, s).unwrap();
        assert_eq!(
            r(
                Some("http://flag:9090"),
                Some("http://env"),
                Some("http://route")
            ),
            ("http://flag:9090".into(), Origin::Flag)
        );
        assert_eq!(
            r(None, Some("http://env"), Some("http://route")),
            ("http://env".into(), Origin::Env)
        );
        assert_eq!(
            r(Some(""), Some(" "), Some("http://route")),
            ("http://route".into(), Origin::Route)
        );
    }

    #[test]
    fn without_any_prometheus_the_error_says_what_to_set() {
        let err = resolve(None, Some(""), None).unwrap_err().to_string();
        for setting in [
            "--prometheus-url",
            "SWITCHYARD_PROMETHEUS_URL",
            "spec.rollout.analysis.prometheusUrl",
        ] {
            assert!(err.contains(setting), "{err}");
        }
    }

    #[test]
    fn the_route_url_is_the_one_its_migration_is_judged_by() {
        let spec: ModelRouteSpec = serde_yaml::from_str(
            "backends: [{name: a, weight: 1}]\nrollout: {analysis: {prometheusUrl: 'http://p:9090'}}",
        )
        .unwrap();
        assert_eq!(
            route_url(&spec, &ModelRouteStatus::default()).as_deref(),
            Some("http://p:9090")
        );
        let bare: ModelRouteSpec =
            serde_yaml::from_str("backends: [{name: a, weight: 1}]").unwrap();
        assert_eq!(route_url(&bare, &ModelRouteStatus::default()), None);
    }

    #[test]
    fn an_invalid_url_names_where_it_was_set() {
        let err = format!("{:#}", Client::new("ftp://x", Origin::Env).unwrap_err());
        assert!(
            err.contains("SWITCHYARD_PROMETHEUS_URL") && err.contains("ftp"),
            "{err}"
        );
    }

    #[test]
    fn steps_keep_a_range_within_its_point_budget() {
        assert_eq!(step_for(Duration::from_secs(300)), Duration::from_secs(1));
        assert_eq!(step_for(Duration::from_secs(3600)), Duration::from_secs(6));
        assert_eq!(
            step_for(Duration::from_secs(86_400)),
            Duration::from_secs(144)
        );
    }
}
