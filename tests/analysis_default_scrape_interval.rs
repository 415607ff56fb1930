//! A real Prometheus with its default 1-minute scrape interval, holding 30 minutes of the
//! gateway's series backfilled with promtool, judged with the analysis settings of the route
//! in `examples/` exactly as written. With a query window equal to the 1-minute analysis
//! interval every `rate()` saw one sample and every verdict was inconclusive, so a migration
//! could only hold and roll back; the window now defaults to four scrape intervals read from
//! Prometheus' configuration API, and queries are evaluated at an explicit instant.
//!
//! Needs `prometheus` and `promtool` on PATH (`e2e/install-deps.sh` installs them).

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use switchyard::analysis::{self, Prometheus, Request, Source};
use switchyard::api::{ModelRoute, Verdict};

const NS: &str = "prod";
const STABLE: &str = "openai-gpt4o";
const CANARY: &str = "llama-h100";

/// Kills Prometheus however the test ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tool(name: &str) -> String {
    let found = Command::new(name)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "{name} is not on PATH; run e2e/install-deps.sh (Debian's prometheus package)"
    );
    name.to_owned()
}

/// OpenMetrics text of what the gateway exports for two routes over 30 minutes, one sample
/// a minute, 17 s past each minute as a real scrape would land: `chat` healthy, `broken`
/// failing 4% of the canary's requests and slow.
fn series(end: i64) -> String {
    let mut out = String::new();
    let families = [
        "switchyard_requests_total",
        "switchyard_request_duration_seconds_count",
        "switchyard_request_duration_seconds_bucket",
    ];
    for f in families {
        let _ = writeln!(out, "# TYPE {f} gauge");
        for minute in 0..=30i64 {
            let t = end - (30 - minute) * 60;
            for (route, error_share, seconds) in [("chat", 0.0, 0.4), ("broken", 0.04, 3.0)] {
                for (backend, rps) in [(STABLE, 19.0), (CANARY, 1.0)] {
                    let labels = format!(
                        r#"namespace="{NS}",route="{route}",backend="{backend}",provider="openai""#
                    );
                    let errors_share = if backend == CANARY { error_share } else { 0.0 };
                    let total = rps * 60.0 * minute as f64;
                    let failed = (total * errors_share).round();
                    let ok = total - failed;
                    let slow = backend == CANARY && route == "broken";
                    match f {
                        "switchyard_requests_total" => {
                            let _ = writeln!(
                                out,
                                r#"{f}{{{labels},outcome="success",code="200"}} {ok} {t}"#
                            );
                            let _ = writeln!(
                                out,
                                r#"{f}{{{labels},outcome="error",code="500"}} {failed} {t}"#
                            );
                        }
                        "switchyard_request_duration_seconds_count" => {
                            for (outcome, v) in [
                                ("success", ok),
                                ("error", failed),
                                ("failover", 0.0),
                                ("unavailable", 0.0),
                            ] {
                                let _ =
                                    writeln!(out, r#"{f}{{{labels},outcome="{outcome}"}} {v} {t}"#);
                            }
                        }
                        _ => {
                            for le in ["0.5", "1", "2", "5", "+Inf"] {
                                let under = le == "+Inf"
                                    || le.parse::<f64>().unwrap()
                                        >= if slow { seconds } else { 0.4 };
                                let v = if under { ok } else { 0.0 };
                                let _ = writeln!(
                                    out,
                                    r#"{f}{{{labels},outcome="success",le="{le}"}} {v} {t}"#
                                );
                            }
                        }
                    }
                }
            }
        }
    }
    out.push_str("# EOF\n");
    out
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_prometheus(dir: &Path, end: i64) -> (Server, String) {
    let input = dir.join("series.om");
    std::fs::write(&input, series(end)).unwrap();
    let data = dir.join("data");
    let out = Command::new(tool("promtool"))
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&input)
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Prometheus' defaults: nothing about the scrape interval is configured.
    let config = dir.join("prometheus.yml");
    std::fs::write(&config, "scrape_configs: []\n").unwrap();
    let port = free_port();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let child = Command::new(tool("prometheus"))
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", data.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    (Server(child), format!("http://127.0.0.1:{port}"))
}

async fn wait_ready(url: &str) {
    for _ in 0..100 {
        if reqwest::get(format!("{url}/-/ready"))
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("Prometheus at {url} did not become ready");
}

#[tokio::test]
async fn the_example_route_gets_conclusive_verdicts_at_the_default_scrape_interval() {
    let dir = std::env::temp_dir().join(format!("switchyard-analysis-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // Old enough that the data lies wholly in the past, as a scrape would have left it.
    let end = Timestamp::now().as_second() - 300;
    let (_server, url) = start_prometheus(&dir, end);
    wait_ready(&url).await;

    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/route-chat.yaml"
    ))
    .unwrap();
    let route: ModelRoute = serde_yaml::from_str(&example).unwrap();
    let analysis = route.spec.rollout.unwrap().analysis.unwrap();
    assert_eq!(analysis.interval.0, "1m", "the example as it is");
    assert!(analysis.window.is_none());

    let prometheus = Prometheus::new(&url).unwrap();
    let scrape = prometheus.scrape_interval().await.unwrap();
    assert_eq!(scrape, Duration::from_secs(60), "Prometheus' default");

    // Evaluated at an explicit instant 10 s after the last scrape.
    let at = Timestamp::from_second(end + 10).unwrap();
    let judge = |route: &'static str| {
        let analysis = &analysis;
        let prometheus = &prometheus;
        async move {
            let req = Request {
                namespace: NS,
                route,
                gaining: vec![CANARY.into()],
                baseline: vec![STABLE.into()],
                analysis,
                mirror: false,
                scrape_interval: Some(scrape),
            };
            analysis::run(prometheus, &req, at).await
        }
    };

    let healthy = judge("chat").await;
    assert_eq!(
        healthy.verdict,
        Verdict::Pass,
        "{}",
        analysis::summary(&healthy)
    );
    assert_eq!(healthy.window.as_ref().map(|w| w.0.as_str()), Some("4m"));
    let errors = healthy
        .checks
        .iter()
        .find(|c| c.name == "error-rate")
        .unwrap();
    assert_eq!(errors.value, Some(0.0));

    let broken = judge("broken").await;
    assert_eq!(
        broken.verdict,
        Verdict::Fail,
        "{}",
        analysis::summary(&broken)
    );
    let failed: Vec<&str> = broken
        .checks
        .iter()
        .filter(|c| c.verdict == Verdict::Fail)
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(failed, ["error-rate", "latency-p95"]);
    let rate = broken.checks[0].value.unwrap();
    assert!((rate - 0.04).abs() < 0.005, "measured {rate}");

    // What the window used to be: the 1-minute interval holds one scrape, so rate() has
    // nothing to compute from (this is why every verdict was inconclusive) ...
    let one_scrape = format!(
        r#"sum(rate(switchyard_request_duration_seconds_count{{namespace="{NS}",route="chat",backend="{CANARY}"}}[60s]))"#
    );
    assert_eq!(prometheus.query(&one_scrape, at).await, Ok(None));
    // ... and such a window is now refused with the smallest one that works.
    let mut one_minute = analysis.clone();
    one_minute.window = Some(switchyard::api::Duration::from("1m"));
    let req = Request {
        namespace: NS,
        route: "chat",
        gaining: vec![CANARY.into()],
        baseline: vec![STABLE.into()],
        analysis: &one_minute,
        mirror: false,
        scrape_interval: Some(scrape),
    };
    let refused = analysis::run(&prometheus, &req, at).await;
    assert_eq!(refused.verdict, Verdict::Inconclusive);
    assert!(
        refused.checks[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("set it to at least 4m"),
        "{refused:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
