//! `kubectl switchyard cost ROUTE [--window 1h] [--by backend|tenant] [-o table|json]`: what a
//! route's traffic cost over a window, per backend (or per tenant and backend), from the
//! gateway's counters in Prometheus: requests, input, cached and output tokens, the cost at
//! each backend's `pricing`, and the cost per 1,000 requests and per million tokens.
//!
//! Counters are read as their growth over the window (`analysis::cost::growth`), so the
//! figures are the gateway's own counts rather than `increase()`'s extrapolation.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use serde::Serialize;
use serde_json::Value;

use super::Target;
use super::table::Table;
use crate::analysis::cost::{ANSWERED_OR_REPLAYED, COST, REQUESTS, TOKENS, growth, ratio};
use crate::analysis::render_template;
use crate::api::ModelRoute;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum By {
    /// One row per backend.
    Backend,
    /// One row per tenant and backend.
    Tenant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Debug, Clone, clap::Args)]
pub struct CostArgs {
    #[command(flatten)]
    pub target: Target,
    /// How far back to look, e.g. 30m, 1h, 24h.
    #[arg(long, default_value = "1h", value_parser = parse_window)]
    pub window: Duration,
    /// Rows per backend, or per tenant and backend.
    #[arg(long, value_enum, default_value_t = By::Backend)]
    pub by: By,
    /// Prometheus to ask (default: $SWITCHYARD_PROMETHEUS_URL, else the route's
    /// spec.rollout.analysis.prometheusUrl).
    #[arg(long, env = "SWITCHYARD_PROMETHEUS_URL")]
    pub prometheus_url: Option<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

fn parse_window(s: &str) -> Result<Duration, String> {
    crate::duration::parse(s).map_err(|e| e.to_string())
}

/// One row's counts over the window.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    pub backend: String,
    pub requests: f64,
    /// Every prompt token, cached ones included.
    pub input_tokens: f64,
    /// The part of the input read from a prompt cache.
    pub cached_input_tokens: f64,
    pub output_tokens: f64,
    /// Absent when the backend has no pricing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per1k_requests: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_million_tokens: Option<f64>,
}

impl Row {
    fn finish(&mut self) {
        let tokens = self.input_tokens + self.output_tokens;
        self.per1k_requests = self.cost.and_then(|c| ratio(c, self.requests, 1_000.0));
        self.per_million_tokens = self.cost.and_then(|c| ratio(c, tokens, 1_000_000.0));
    }

    fn add(&mut self, other: &Row) {
        self.requests += other.requests;
        self.input_tokens += other.input_tokens;
        self.cached_input_tokens += other.cached_input_tokens;
        self.output_tokens += other.output_tokens;
        if let Some(c) = other.cost {
            self.cost = Some(self.cost.unwrap_or(0.0) + c);
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub namespace: String,
    pub route: String,
    pub window: String,
    pub time: String,
    pub rows: Vec<Row>,
    /// The whole route.
    pub total: Row,
}

/// The Prometheus to ask: the flag or environment, else the route's own setting.
pub fn prometheus_url(flag: Option<&str>, route: &ModelRoute) -> anyhow::Result<String> {
    let from_route = route
        .spec
        .rollout
        .as_ref()
        .and_then(|r| r.analysis.as_ref())
        .and_then(|a| a.prometheus_url.as_deref());
    flag.or(from_route).map(str::to_owned).ok_or_else(|| {
        anyhow::anyhow!(
            "no Prometheus to ask: pass --prometheus-url URL, set SWITCHYARD_PROMETHEUS_URL, or set spec.rollout.analysis.prometheusUrl on the route"
        )
    })
}

/// The queries of a report, each summed by `labels`: cost, answered requests, tokens by type.
pub fn queries(namespace: &str, route: &str, window: Duration, by: By) -> [String; 3] {
    let sel = render_template(
        r#"namespace="{{namespace}}",route="{{route}}""#,
        namespace,
        route,
        &[],
        window,
    );
    let labels = match by {
        By::Backend => "backend",
        By::Tenant => "tenant, backend",
    };
    [
        format!("sum by ({labels}) ({})", growth(COST, &sel, window)),
        format!(
            "sum by ({labels}) ({})",
            growth(REQUESTS, &format!("{sel},{ANSWERED_OR_REPLAYED}"), window)
        ),
        format!(
            "sum by ({labels}, type) ({})",
            growth(
                TOKENS,
                &format!(r#"{sel},type=~"input|cached_input|output""#),
                window
            )
        ),
    ]
}

/// A sample's labels and value.
pub type Sample = (BTreeMap<String, String>, f64);

/// Rows out of the three answers (cost, requests, tokens by type), sorted by tenant and
/// backend.
pub fn rows(by: By, [cost, requests, tokens]: [Vec<Sample>; 3]) -> Vec<Row> {
    let mut rows: BTreeMap<(String, String), Row> = BTreeMap::new();
    for (l, v) in &cost {
        row(&mut rows, by, l).cost = Some(*v);
    }
    for (l, v) in &requests {
        row(&mut rows, by, l).requests = *v;
    }
    for (l, v) in &tokens {
        let r = row(&mut rows, by, l);
        match l.get("type").map(String::as_str) {
            Some("input") => r.input_tokens = *v,
            Some("cached_input") => r.cached_input_tokens = *v,
            _ => r.output_tokens = *v,
        }
    }
    let mut out: Vec<Row> = rows.into_values().collect();
    out.iter_mut().for_each(Row::finish);
    out
}

fn row<'a>(
    rows: &'a mut BTreeMap<(String, String), Row>,
    by: By,
    labels: &BTreeMap<String, String>,
) -> &'a mut Row {
    let label = |k: &str| labels.get(k).cloned().unwrap_or_default();
    let (tenant, backend) = (label("tenant"), label("backend"));
    rows.entry((tenant.clone(), backend.clone()))
        .or_insert_with(|| Row {
            tenant: (by == By::Tenant).then_some(tenant),
            backend,
            ..Row::default()
        })
}

pub fn total(rows: &[Row]) -> Row {
    let mut t = Row {
        backend: "TOTAL".into(),
        ..Row::default()
    };
    rows.iter().for_each(|r| t.add(r));
    t.finish();
    t
}

pub async fn run(args: CostArgs) -> anyhow::Result<()> {
    let (client, ns) = super::client(&args.target).await?;
    let name = &args.target.route;
    let mr = Api::<ModelRoute>::namespaced(client, &ns)
        .get(name)
        .await
        .map_err(|e| anyhow::anyhow!("modelroute {ns}/{name}: {e}"))?;
    let url = prometheus_url(args.prometheus_url.as_deref(), &mr)?;
    let at = Timestamp::now();
    let prom = Vector::new(&url)?;
    let [a, b, c] = queries(&ns, name, args.window, args.by);
    let (a, b, c) = futures::try_join!(prom.query(&a, at), prom.query(&b, at), prom.query(&c, at))?;
    let rows = rows(args.by, [a, b, c]);
    let report = Report {
        namespace: ns,
        route: name.clone(),
        window: crate::duration::format(args.window),
        time: at.to_string(),
        total: total(&rows),
        rows,
    };
    let text = match args.output {
        Output::Json => serde_json::to_string_pretty(&report)? + "\n",
        Output::Table => render(&report),
    };
    Ok(super::write_stdout(text.as_bytes())?)
}

/// The report as a table, the route's total last.
pub fn render(r: &Report) -> String {
    let tenant = r.rows.iter().any(|row| row.tenant.is_some());
    let mut headers = vec![];
    if tenant {
        headers.push("TENANT");
    }
    headers.extend([
        "BACKEND",
        "REQUESTS",
        "INPUT",
        "CACHED",
        "OUTPUT",
        "COST",
        "PER 1K REQ",
        "PER 1M TOK",
    ]);
    let mut t = Table::new(headers);
    let money = |v: Option<f64>| v.map_or("-".into(), amount);
    for row in r.rows.iter().chain([&r.total]) {
        let mut cells = vec![];
        if tenant {
            cells.push(row.tenant.clone().unwrap_or_default());
        }
        cells.extend([
            row.backend.clone(),
            format!("{:.0}", row.requests),
            format!("{:.0}", row.input_tokens),
            format!("{:.0}", row.cached_input_tokens),
            format!("{:.0}", row.output_tokens),
            money(row.cost),
            money(row.per1k_requests),
            money(row.per_million_tokens),
        ]);
        t.row(cells);
    }
    format!(
        "{}/{} over the last {} (amounts in the currency of the backends' pricing)\n{}",
        r.namespace,
        r.route,
        r.window,
        t.render("")
    )
}

/// An amount to four significant digits (at least two decimals), so small costs stay visible.
fn amount(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v:.2}");
    }
    let magnitude = v.abs().log10().floor() as i32;
    let decimals = (3 - magnitude).clamp(2, 12) as usize;
    format!("{v:.decimals$}")
}

/// Instant queries that return a vector, each sample with its labels.
struct Vector {
    http: reqwest::Client,
    url: reqwest::Url,
}

impl Vector {
    fn new(base: &str) -> anyhow::Result<Self> {
        let mut url = reqwest::Url::parse(base)
            .with_context(|| format!("invalid Prometheus URL {base:?}"))?;
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(crate::analysis::QUERY_TIMEOUT)
                .build()?,
            url: url.join("api/v1/query")?,
        })
    }

    async fn query(&self, promql: &str, at: Timestamp) -> anyhow::Result<Vec<Sample>> {
        let time = format!("{:.3}", at.as_millisecond() as f64 / 1000.0);
        let resp = self
            .http
            .get(self.url.clone())
            .query(&[("query", promql), ("time", &time)])
            .send()
            .await
            .with_context(|| format!("cannot reach Prometheus at {}", self.url))?;
        let status = resp.status();
        let body: Value = resp
            .json()
            .await
            .with_context(|| format!("Prometheus answered HTTP {status} without JSON"))?;
        parse_vector(&body)
    }
}

/// The samples of a Prometheus instant-query answer; an error answer or warnings (partial
/// data, so a total would be wrong) are errors.
pub fn parse_vector(body: &Value) -> anyhow::Result<Vec<Sample>> {
    if body["status"] != "success" {
        anyhow::bail!(
            "Prometheus refused the query: {}: {}",
            body["errorType"].as_str().unwrap_or("error"),
            body["error"].as_str().unwrap_or_default()
        );
    }
    if let Some(w) = body["warnings"].as_array().filter(|w| !w.is_empty()) {
        anyhow::bail!("Prometheus returned partial data: {w:?}");
    }
    let mut out = vec![];
    for s in body["data"]["result"].as_array().into_iter().flatten() {
        let labels = s["metric"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect();
        let value = s["value"][1]
            .as_str()
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| v.is_finite())
            .unwrap_or(0.0);
        out.push((labels, value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
