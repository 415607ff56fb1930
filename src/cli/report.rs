//! `kubectl switchyard report ROUTE`: gathers a migration's timeline from Prometheus (range
//! queries over the gateway's and the controller's metrics) and the route's status history,
//! and writes it as PNG and SVG (drawn by `crate::report`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ApiResource, DynamicObject};
use serde_json::Value;

use super::prometheus::{self, Client};
use super::{Target, client};
use crate::analysis::Labelled;
use crate::analysis::escape_string;
use crate::analysis::render_window;
use crate::api::{MigrationOutcome, ModelRoute, ModelRouteSpec, ModelRouteStatus};
use crate::report::{Eval, Marker, MarkerKind, Panel, Report, Series};

#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub target: Target,
    /// How far back the timeline goes, e.g. 30m, 1h, 1d.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub since: Duration,
    /// Prometheus to read (else $SWITCHYARD_PROMETHEUS_URL, else the route's
    /// spec.rollout.analysis.prometheusUrl).
    #[arg(long)]
    pub prometheus_url: Option<String>,
    /// Directory the PNG and SVG are written to (created if missing).
    #[arg(short = 'o', long = "output-dir", default_value = ".")]
    pub output_dir: PathBuf,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    crate::duration::parse(s).map_err(|e| e.to_string())
}

/// One panel's query and how its values are shown.
struct Query {
    title: &'static str,
    promql: String,
    /// Multiplies each value (thousandths to percent).
    scale: f64,
}

/// Live traffic, as the analysis counts it: not shadow copies, not the caller's mistakes,
/// not replayed evaluation requests.
const LIVE: &str = r#"outcome!~"shadow|client_error|eval""#;
const FAILED: &str = r#"outcome=~"error|failover|unavailable""#;

/// `namespace="..",route=".."`, escaped as PromQL strings.
fn selector(ns: &str, route: &str) -> String {
    format!(
        r#"namespace="{}",route="{}""#,
        escape_string(ns),
        escape_string(route)
    )
}

/// The panels' queries for route `ns/route`, rates over `window`, one series per backend.
fn queries(ns: &str, route: &str, window: Duration) -> Vec<Query> {
    let sel = selector(ns, route);
    let w = render_window(window);
    let matchers = |extra: &str| {
        if extra.is_empty() {
            sel.clone()
        } else {
            format!("{sel},{extra}")
        }
    };
    let rate = |metric: &str, extra: &str| {
        format!(
            "sum by (backend) (rate({metric}{{{}}}[{w}]))",
            matchers(extra)
        )
    };
    let p95 = |metric: &str, extra: &str| {
        format!(
            "histogram_quantile(0.95, sum by (backend, le) (rate({metric}_bucket{{{}}}[{w}])))",
            matchers(extra)
        )
    };
    let count = "switchyard_request_duration_seconds_count";
    vec![
        Query {
            title: "Weight (% of traffic the gateway applies)",
            promql: format!("sum by (backend) (switchyard_route_weight{{{sel}}})"),
            scale: 0.1,
        },
        Query {
            title: "Error rate (share of live requests)",
            promql: format!("{} / {}", rate(count, FAILED), rate(count, LIVE)),
            scale: 1.0,
        },
        Query {
            title: "p95 latency of successful requests (s)",
            promql: p95(
                "switchyard_request_duration_seconds",
                r#"outcome="success""#,
            ),
            scale: 1.0,
        },
        Query {
            title: "Time to first token p95 (s)",
            promql: p95("switchyard_time_to_first_token_seconds", ""),
            scale: 1.0,
        },
        Query {
            title: "Cost per 1k successful requests",
            promql: format!(
                "1000 * {} / {}",
                rate("switchyard_cost_total", ""),
                rate("switchyard_requests_total", r#"outcome="success""#)
            ),
            scale: 1.0,
        },
    ]
}

/// One series per backend, sorted by name, values scaled.
fn series(found: Vec<Labelled>, scale: f64) -> Vec<Series> {
    let mut out: Vec<Series> = found
        .into_iter()
        .map(|l| Series {
            name: l.labels.get("backend").cloned().unwrap_or_default(),
            points: l.points.into_iter().map(|(t, v)| (t, v * scale)).collect(),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The markers: each step the route entered (from `switchyard_route_step`), and the start
/// and end of every migration in `history` within the range.
fn markers(steps: &[(f64, f64)], status: &ModelRouteStatus, start: f64, end: f64) -> Vec<Marker> {
    let mut out = vec![];
    let mut previous = 0.0;
    for &(t, step) in steps {
        if step > 0.0 && step != previous {
            out.push(Marker {
                at: t,
                label: format!("step {step}"),
                kind: MarkerKind::Step,
            });
        }
        previous = step;
    }
    let within = |t: f64| (start..=end).contains(&t);
    let secs = |t: &Timestamp| t.as_millisecond() as f64 / 1000.0;
    let started = status
        .history
        .iter()
        .map(|r| secs(&r.started_at.0))
        .chain(status.migration_started_at.as_ref().map(|t| secs(&t.0)));
    for at in started.filter(|t| within(*t)) {
        out.push(Marker {
            at,
            label: "started".into(),
            kind: MarkerKind::Started,
        });
    }
    for r in &status.history {
        let at = secs(&r.finished_at.0);
        if within(at) {
            out.push(Marker {
                at,
                label: r.outcome.as_str().into(),
                kind: match r.outcome {
                    MigrationOutcome::Promoted => MarkerKind::Promoted,
                    _ => MarkerKind::Ended,
                },
            });
        }
    }
    out.sort_by(|a, b| a.at.total_cmp(&b.at));
    out
}

pub async fn run(args: ReportArgs) -> anyhow::Result<()> {
    let (kube, ns) = client(&args.target).await?;
    let name = &args.target.route;
    let api: Api<DynamicObject> =
        Api::namespaced_with(kube, &ns, &ApiResource::erase::<ModelRoute>(&()));
    // Untyped, so fields this version's types do not know (status.evaluation) are kept.
    let route = api
        .get(name)
        .await
        .with_context(|| format!("modelroute {ns}/{name}"))?;
    let spec: ModelRouteSpec = serde_json::from_value(route.data["spec"].clone())
        .with_context(|| format!("modelroute {ns}/{name}: reading spec"))?;
    let raw_status = route.data.get("status").cloned().unwrap_or(Value::Null);
    let status: ModelRouteStatus = if raw_status.is_null() {
        ModelRouteStatus::default()
    } else {
        serde_json::from_value(raw_status.clone())
            .with_context(|| format!("modelroute {ns}/{name}: reading status"))?
    };
    let env = std::env::var(prometheus::ENV).ok();
    let (url, origin) = prometheus::resolve(
        args.prometheus_url.as_deref(),
        env.as_deref(),
        prometheus::route_url(&spec, &status).as_deref(),
    )?;
    let prom = Client::new(&url, origin)?;

    let end = Timestamp::now();
    let since = args.since.max(Duration::from_secs(60));
    let start = end - since;
    let step = prometheus::step_for(since);
    // Rates look back four scrapes (as the analysis does) and at least two steps.
    let scrape = prom
        .scrape_interval()
        .await
        .unwrap_or(Duration::from_secs(60));
    let window = (4 * scrape).max(2 * step);

    let mut report = Report {
        title: format!("ModelRoute {ns}/{name}"),
        subtitle: format!(
            "last {} ({} to {} UTC), rates over {}, from Prometheus {}",
            crate::duration::format(since),
            start.strftime("%Y-%m-%d %H:%M:%S"),
            end.strftime("%H:%M:%S"),
            render_window(window),
            prom.url()
        ),
        start: start.as_millisecond() as f64 / 1000.0,
        end: end.as_millisecond() as f64 / 1000.0,
        step: step.as_secs_f64(),
        eval: raw_status.get("evaluation").and_then(Eval::from_json),
        ..Report::default()
    };
    for q in queries(&ns, name, window) {
        let found = prom.range(&q.promql, start, end, step).await?;
        report.panels.push(Panel {
            title: q.title.into(),
            series: series(found, q.scale),
        });
    }
    let sel = selector(&ns, name);
    let steps = prom
        .range(
            &format!("max(switchyard_route_step{{{sel}}})"),
            start,
            end,
            step,
        )
        .await?;
    let steps = steps
        .into_iter()
        .next()
        .map(|s| s.points)
        .unwrap_or_default();
    if steps.is_empty() {
        report.notes.push(
            "No switchyard_route_step series in this range: steps are not marked (does Prometheus scrape the leading controller's /metrics?)"
                .into(),
        );
    }
    report.markers = markers(&steps, &status, report.start, report.end);
    report.fit_to_data();

    std::fs::create_dir_all(&args.output_dir)
        .with_context(|| format!("creating {}", args.output_dir.display()))?;
    let base = args.output_dir.join(format!("{name}-report"));
    let (png, svg) = (base.with_extension("png"), base.with_extension("svg"));
    std::fs::write(&png, crate::report::png(&report)?)
        .with_context(|| format!("writing {}", png.display()))?;
    std::fs::write(&svg, crate::report::svg(&report)?)
        .with_context(|| format!("writing {}", svg.display()))?;
    println!("{}\n{}", png.display(), svg.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_select_the_route_and_live_traffic_per_backend() {
        let q = queries("prod", r#"ch"at"#, Duration::from_secs(8));
        let sel = r#"namespace="prod",route="ch\"at""#;
        assert_eq!(
            q[0].promql,
            format!("sum by (backend) (switchyard_route_weight{{{sel}}})")
        );
        assert_eq!(q[0].scale, 0.1, "thousandths as percent");
        assert_eq!(
            q[1].promql,
            format!(
                r#"sum by (backend) (rate(switchyard_request_duration_seconds_count{{{sel},outcome=~"error|failover|unavailable"}}[8s])) / sum by (backend) (rate(switchyard_request_duration_seconds_count{{{sel},outcome!~"shadow|client_error|eval"}}[8s]))"#
            )
        );
        assert_eq!(
            q[2].promql,
            format!(
                r#"histogram_quantile(0.95, sum by (backend, le) (rate(switchyard_request_duration_seconds_bucket{{{sel},outcome="success"}}[8s])))"#
            )
        );
        assert_eq!(
            q[3].promql,
            format!(
                r#"histogram_quantile(0.95, sum by (backend, le) (rate(switchyard_time_to_first_token_seconds_bucket{{{sel}}}[8s])))"#
            )
        );
        assert_eq!(
            q[4].promql,
            format!(
                r#"1000 * sum by (backend) (rate(switchyard_cost_total{{{sel}}}[8s])) / sum by (backend) (rate(switchyard_requests_total{{{sel},outcome="success"}}[8s]))"#
            )
        );
    }

    #[test]
    fn steps_and_the_migration_s_end_are_marked() {
        let status: ModelRouteStatus = serde_yaml::from_str(
            r#"
history:
  - {from: [{name: a, weight: 1}], to: [{name: b, weight: 1}], outcome: RolledBack,
     startedAt: "2023-11-14T22:13:30Z", finishedAt: "2023-11-14T22:15:00Z"}
  - {from: [{name: a, weight: 1}], to: [{name: b, weight: 1}], outcome: Promoted,
     startedAt: "2023-11-14T20:00:00Z", finishedAt: "2023-11-14T20:10:00Z"}
"#,
        )
        .unwrap();
        let t0 = 1_700_000_000.0; // 22:13:20
        let steps = [
            (t0, 0.0),
            (t0 + 10.0, 1.0),
            (t0 + 12.0, 1.0),
            (t0 + 20.0, 2.0),
            (t0 + 90.0, 0.0),
        ];
        let m = markers(&steps, &status, t0, t0 + 300.0);
        let got: Vec<(f64, &str, MarkerKind)> = m
            .iter()
            .map(|m| (m.at - t0, m.label.as_str(), m.kind))
            .collect();
        assert_eq!(
            got,
            [
                (10.0, "step 1", MarkerKind::Step),
                (10.0, "started", MarkerKind::Started),
                (20.0, "step 2", MarkerKind::Step),
                (100.0, "RolledBack", MarkerKind::Ended),
            ],
            "the promotion hours before the range is not marked"
        );
    }

    #[test]
    fn each_backend_is_one_series_sorted_and_scaled() {
        let found = vec![
            Labelled {
                labels: [("backend".to_string(), "openai".to_string())].into(),
                points: vec![(1.0, 950.0)],
            },
            Labelled {
                labels: [("backend".to_string(), "llama".to_string())].into(),
                points: vec![(1.0, 50.0)],
            },
        ];
        let s = series(found, 0.1);
        assert_eq!(s[0].name, "llama");
        assert_eq!(s[0].points, [(1.0, 5.0)]);
        assert_eq!(s[1].points, [(1.0, 95.0)]);
    }
}
