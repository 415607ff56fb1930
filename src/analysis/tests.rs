//! `run` against a fake Prometheus that answers exact PromQL strings, so a typo in a metric,
//! label or matcher makes the query unknown and the test fail.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use super::*;
use crate::api::{Duration, InconclusivePolicy, MetricCheck};

const VOLUME: &str = r#"sum(increase(switchyard_requests_total{namespace="prod",route="chat",backend=~"vllm",outcome!~"shadow|client_error|eval"}[60s]))"#;
const ERRORS: &str = r#"sum(rate(switchyard_request_duration_seconds_count{namespace="prod",route="chat",backend=~"vllm",outcome=~"error|failover|unavailable"}[60s])) / sum(rate(switchyard_request_duration_seconds_count{namespace="prod",route="chat",backend=~"vllm",outcome!~"shadow|client_error|eval"}[60s]))"#;
const LATENCY: &str = r#"histogram_quantile(0.95, sum by (le) (rate(switchyard_request_duration_seconds_bucket{namespace="prod",route="chat",backend=~"vllm",outcome="success"}[60s])))"#;

const SHADOW_VOLUME: &str = r#"sum(increase(switchyard_requests_total{namespace="prod",route="chat",backend=~"vllm",outcome="shadow"}[60s]))"#;
const SHADOW_ERRORS: &str = r#"(sum(rate(switchyard_requests_total{namespace="prod",route="chat",backend=~"vllm",outcome="shadow",code!~"2.."}[60s])) or 0 * sum(rate(switchyard_requests_total{namespace="prod",route="chat",backend=~"vllm",outcome="shadow"}[60s]))) / sum(rate(switchyard_requests_total{namespace="prod",route="chat",backend=~"vllm",outcome="shadow"}[60s]))"#;
const SHADOW_LATENCY: &str = r#"histogram_quantile(0.95, sum by (le) (rate(switchyard_request_duration_seconds_bucket{namespace="prod",route="chat",backend=~"vllm",outcome="shadow"}[60s])))"#;
const SHADOW_TOKENS: &str = r#"sum(rate(switchyard_tokens_total{namespace="prod",route="chat",backend=~"vllm",type="output",tenant!="switchyard:eval"}[60s])) / sum(rate(switchyard_requests_total{namespace="prod",route="chat",backend=~"vllm",outcome="success"}[60s]) or rate(switchyard_requests_total{namespace="prod",route="chat",backend=~"vllm",outcome="shadow",code=~"2.."}[60s]))"#;
const BASELINE_TOKENS: &str = r#"sum(rate(switchyard_tokens_total{namespace="prod",route="chat",backend=~"openai",type="output",tenant!="switchyard:eval"}[60s])) / sum(rate(switchyard_requests_total{namespace="prod",route="chat",backend=~"openai",outcome="success"}[60s]))"#;

type Answer = Result<Option<f64>, SourceError>;

/// Answers known PromQL strings; records every query asked.
#[derive(Default)]
struct Fake {
    answers: HashMap<String, Answer>,
    asked: Mutex<Vec<String>>,
}

impl Fake {
    fn new(answers: &[(&str, Answer)]) -> Self {
        Self {
            answers: answers
                .iter()
                .map(|(q, a)| (q.to_string(), a.clone()))
                .collect(),
            asked: Mutex::default(),
        }
    }

    fn asked(&self) -> Vec<String> {
        let mut v = self.asked.lock().unwrap().clone();
        v.sort();
        v
    }

    /// Every known query was asked, and nothing else.
    fn assert_asked_exactly_the_known_queries(&self) {
        let mut known: Vec<String> = self.answers.keys().cloned().collect();
        known.sort();
        assert_eq!(self.asked(), known);
    }
}

impl Source for Fake {
    fn query(&self, promql: &str, at: Timestamp) -> impl Future<Output = Answer> + Send {
        assert_eq!(
            at,
            now(),
            "every query is evaluated at the analysis instant"
        );
        self.asked.lock().unwrap().push(promql.to_owned());
        let answer = self
            .answers
            .get(promql)
            .cloned()
            .unwrap_or_else(|| Err(SourceError::Query(format!("unexpected query {promql}"))));
        async move { answer }
    }
}

fn analysis() -> Analysis {
    Analysis {
        interval: Duration::from("1m"),
        window: None,
        min_requests: 50,
        max_error_rate: Some(0.005),
        max_latency_p95: Some(Duration::from("2s")),
        relative: None,
        metrics: vec![],
        failure_limit: 1,
        on_inconclusive: InconclusivePolicy::Hold,
        max_hold: Duration::from("30m"),
        prometheus_url: None,
    }
}

fn request(analysis: &Analysis, mirror: bool) -> Request<'_> {
    Request {
        namespace: "prod",
        route: "chat",
        gaining: vec!["vllm".into()],
        baseline: vec!["openai".into()],
        analysis,
        mirror,
        // Four 15 s scrapes: the default window is the 60 s the queries below pin.
        scrape_interval: Some(std::time::Duration::from_secs(15)),
    }
}

fn now() -> Timestamp {
    Timestamp::from_second(1_700_000_000).unwrap()
}

async fn judge(fake: &Fake, req: &Request<'_>) -> AnalysisResult {
    let result = run(fake, req, now()).await;
    assert_eq!(result.time, Time(now()));
    assert_eq!(result.window, Some(Duration::from("1m")));
    result
}

fn check<'r>(result: &'r AnalysisResult, name: &str) -> &'r CheckResult {
    result
        .checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check {name} in {result:?}"))
}

fn names(result: &AnalysisResult) -> Vec<&str> {
    result.checks.iter().map(|c| c.name.as_str()).collect()
}

fn live(volume: Answer, errors: Answer, latency: Answer) -> Fake {
    Fake::new(&[(VOLUME, volume), (ERRORS, errors), (LATENCY, latency)])
}

fn custom(name: &str, query: &str, min: Option<f64>, max: Option<f64>) -> MetricCheck {
    MetricCheck {
        name: name.into(),
        query: query.into(),
        min,
        max,
    }
}

#[tokio::test]
async fn live_step_passes_with_the_exact_queries() {
    let a = analysis();
    let fake = live(Ok(Some(120.0)), Ok(Some(0.001)), Ok(Some(0.41)));
    let result = judge(&fake, &request(&a, false)).await;
    fake.assert_asked_exactly_the_known_queries();
    assert_eq!(result.verdict, Verdict::Pass);
    assert_eq!(
        result.checks,
        vec![
            CheckResult {
                name: "error-rate".into(),
                backend: Some("vllm".into()),
                value: Some(0.001),
                baseline: None,
                threshold: "<= 0.005".into(),
                verdict: Verdict::Pass,
                reason: None,
            },
            CheckResult {
                name: "latency-p95".into(),
                backend: Some("vllm".into()),
                value: Some(0.41),
                baseline: None,
                threshold: "<= 2".into(),
                verdict: Verdict::Pass,
                reason: None,
            },
        ]
    );
    assert!(!unreachable(&result));
    assert_eq!(
        summary(&result),
        "error-rate of vllm 0.001 <= 0.005 (Pass); latency-p95 of vllm 0.41 <= 2 (Pass)"
    );
}

#[tokio::test]
async fn mirror_step_judges_shadow_traffic_with_the_exact_queries() {
    let a = analysis();
    let fake = Fake::new(&[
        (SHADOW_VOLUME, Ok(Some(80.0))),
        (SHADOW_ERRORS, Ok(Some(0.0))),
        (SHADOW_LATENCY, Ok(Some(1.2))),
        (SHADOW_TOKENS, Ok(Some(410.0))),
        (BASELINE_TOKENS, Ok(Some(400.0))),
    ]);
    let result = judge(&fake, &request(&a, true)).await;
    fake.assert_asked_exactly_the_known_queries();
    assert_eq!(
        names(&result),
        ["error-rate", "latency-p95", "token-difference"]
    );
    assert_eq!(result.verdict, Verdict::Pass, "{result:?}");
    let tokens = check(&result, "token-difference");
    assert_eq!(tokens.threshold, "<= 0.05");
    assert!((tokens.value.unwrap() - 0.025).abs() < 1e-12);
    assert_eq!(check(&result, "error-rate").value, Some(0.0));
}

#[tokio::test]
async fn a_high_error_rate_fails() {
    let a = analysis();
    let fake = live(Ok(Some(500.0)), Ok(Some(0.052)), Ok(Some(0.41)));
    let result = judge(&fake, &request(&a, false)).await;
    assert_eq!(result.verdict, Verdict::Fail);
    assert_eq!(check(&result, "error-rate").verdict, Verdict::Fail);
    assert_eq!(check(&result, "error-rate").reason, None);
    assert_eq!(
        summary(&result),
        "error-rate of vllm 0.052 > 0.005 (Fail); latency-p95 of vllm 0.41 <= 2 (Pass)"
    );
}

#[tokio::test]
async fn an_error_rate_equal_to_the_threshold_passes() {
    let a = analysis();
    let fake = live(Ok(Some(500.0)), Ok(Some(0.005)), Ok(Some(2.0)));
    let result = judge(&fake, &request(&a, false)).await;
    assert_eq!(result.verdict, Verdict::Pass);
}

#[tokio::test]
async fn a_slow_p95_fails() {
    let a = analysis();
    let fake = live(Ok(Some(500.0)), Ok(Some(0.0)), Ok(Some(2.5)));
    let result = judge(&fake, &request(&a, false)).await;
    assert_eq!(result.verdict, Verdict::Fail);
    assert_eq!(check(&result, "error-rate").verdict, Verdict::Pass);
    assert_eq!(check(&result, "latency-p95").verdict, Verdict::Fail);
    assert_eq!(
        summary(&result),
        "error-rate of vllm 0 <= 0.005 (Pass); latency-p95 of vllm 2.5 > 2 (Fail)"
    );
}

#[tokio::test]
async fn a_p95_above_the_largest_bucket_fails_without_a_value() {
    let a = analysis();
    let fake = live(Ok(Some(500.0)), Ok(Some(0.0)), Ok(Some(f64::INFINITY)));
    let result = judge(&fake, &request(&a, false)).await;
    let latency = check(&result, "latency-p95");
    assert_eq!(latency.verdict, Verdict::Fail);
    assert_eq!(latency.value, None);
    assert_eq!(
        latency.reason.as_deref(),
        Some("the 95th percentile is above the largest histogram bucket")
    );
    // Without enough traffic even that is only inconclusive.
    let fake = live(Ok(Some(5.0)), Ok(Some(0.0)), Ok(Some(f64::INFINITY)));
    let result = judge(&fake, &request(&a, false)).await;
    assert_eq!(result.verdict, Verdict::Inconclusive);
}

#[tokio::test]
async fn millisecond_latency_thresholds_are_shown_in_seconds() {
    let mut a = analysis();
    a.max_latency_p95 = Some(Duration::from("1s500ms"));
    let fake = live(Ok(Some(500.0)), Ok(Some(0.0)), Ok(Some(1.2)));
    let result = judge(&fake, &request(&a, false)).await;
    assert_eq!(check(&result, "latency-p95").threshold, "<= 1.5");
    assert_eq!(result.verdict, Verdict::Pass);
}

#[tokio::test]
async fn the_default_error_rate_threshold_is_one_percent() {
    let mut a = analysis();
    a.max_error_rate = None;
    a.max_latency_p95 = None;
    let fake = Fake::new(&[(VOLUME, Ok(Some(100.0))), (ERRORS, Ok(Some(0.009)))]);
    let result = judge(&fake, &request(&a, false)).await;
    fake.assert_asked_exactly_the_known_queries();
    assert_eq!(
        names(&result),
        ["error-rate"],
        "no latency check unless set"
    );
    assert_eq!(result.checks[0].threshold, "<= 0.01");
    assert_eq!(result.verdict, Verdict::Pass);

    let fake = Fake::new(&[(VOLUME, Ok(Some(100.0))), (ERRORS, Ok(Some(0.011)))]);
    let result = judge(&fake, &request(&a, false)).await;
    assert_eq!(result.verdict, Verdict::Fail);
}

#[tokio::test]
async fn too_few_requests_make_built_in_checks_inconclusive_but_report_values() {
    let a = analysis();
    let fake = live(Ok(Some(12.0)), Ok(Some(0.5)), Ok(Some(0.3)));
    let result = judge(&fake, &request(&a, false)).await;
    assert_eq!(
        result.verdict,
        Verdict::Inconclusive,
        "never Fail on thin data"
    );
    let reason = "12 requests in 1m, fewer than minRequests 50";
    for c in &result.checks {
        assert_eq!(c.verdict, Verdict::Inconclusive);
        assert_eq!(c.reason.as_deref(), Some(reason));
    }
    assert_eq!(check(&result, "error-rate").value, Some(0.5));
    assert_eq!(check(&result, "latency-p95").value, Some(0.3));
    assert_eq!(
        summary(&result),
        format!(
            "error-rate of vllm 0.5 (Inconclusive: {reason}); latency-p95 of vllm 0.3 (Inconclusive)"
        )
    );
    assert!(!unreachable(&result));
}

#[tokio::test]
async fn a_fractional_count_just_below_the_minimum_is_rounded_down() {
    let a = analysis();
    let fake = live(Ok(Some(49.99)), Ok(Some(0.0)), Ok(Some(0.3)));
    let result = judge(&fake, &request(&a, false)).await;
    assert_eq!(
        result.checks[0].reason.as_deref(),
        Some("49.9 requests in 1m, fewer than minRequests 50")
    );
    let fake = live(Ok(Some(50.0)), Ok(Some(0.0)), Ok(Some(0.3)));
    assert_eq!(
        judge(&fake, &request(&a, false)).await.verdict,
        Verdict::Pass,
        "exactly minRequests is enough"
    );
}

#[tokio::test]
async fn no_traffic_at_all_is_inconclusive() {
    let a = analysis();
    let fake = live(Ok(None), Ok(None), Ok(Some(f64::NAN)));
    let result = judge(&fake, &request(&a, false)).await;
    assert_eq!(result.verdict, Verdict::Inconclusive);
    for c in &result.checks {
        assert_eq!(c.value, None);
        assert_eq!(
            c.reason.as_deref(),
            Some("no requests in 1m, fewer than minRequests 50")
        );
    }
}

#[tokio::test]
async fn too_few_shadow_requests_in_the_mirror_phase() {
    let a = analysis();
    let fake = Fake::new(&[
        (SHADOW_VOLUME, Ok(Some(12.0))),
        (SHADOW_ERRORS, Ok(Some(0.0))),
        (SHADOW_LATENCY, Ok(Some(0.2))),
        (SHADOW_TOKENS, Ok(Some(600.0))),
        (BASELINE_TOKENS, Ok(Some(400.0))),
    ]);
    let result = judge(&fake, &request(&a, true)).await;
    assert_eq!(result.verdict, Verdict::Inconclusive);
    let tokens = check(&result, "token-difference");
    assert_eq!(tokens.verdict, Verdict::Inconclusive);
    assert_eq!(tokens.value, Some(0.5));
    assert_eq!(
        tokens.reason.as_deref(),
        Some("12 shadow requests in 1m, fewer than minRequests 50")
    );
}

#[tokio::test]
async fn min_requests_zero_judges_whatever_there_is() {
    let mut a = analysis();
    a.min_requests = 0;
    let fake = live(Ok(None), Ok(Some(0.0)), Ok(Some(0.3)));
    let result = judge(&fake, &request(&a, false)).await;
    assert_eq!(result.verdict, Verdict::Pass);
}

#[tokio::test]
async fn nan_and_empty_answers_are_no_data() {
    let a = analysis();
    let fake = live(Ok(Some(100.0)), Ok(Some(f64::NAN)), Ok(None));
    let result = judge(&fake, &request(&a, false)).await;
    assert_eq!(result.verdict, Verdict::Inconclusive);
    let errors = check(&result, "error-rate");
    assert_eq!(errors.value, None);
    assert_eq!(
        errors.reason.as_deref(),
        Some("query returned NaN (no data)")
    );
    let latency = check(&result, "latency-p95");
    assert_eq!(latency.reason.as_deref(), Some("query returned no data"));
    // No NaN reaches the API object.
    let json = serde_json::to_string(&result).unwrap();
    assert!(
        !json.contains("\"value\"") && !json.contains("null"),
        "{json}"
    );

    let fake = live(Ok(Some(100.0)), Ok(Some(f64::NEG_INFINITY)), Ok(Some(0.1)));
    let result = judge(&fake, &request(&a, false)).await;
    assert_eq!(
        check(&result, "error-rate").reason.as_deref(),
        Some("query returned -inf (no data)")
    );
}

#[tokio::test]
async fn an_unreachable_prometheus_makes_every_check_inconclusive() {
    let mut a = analysis();
    a.metrics = vec![custom("ttft", "vector(1)", None, Some(2.0))];
    let down = || {
        Err(SourceError::Unreachable(
            "cannot connect: connection refused".into(),
        ))
    };
    let fake = Fake::new(&[
        (VOLUME, down()),
        (ERRORS, down()),
        (LATENCY, Ok(Some(0.3))),
        ("vector(1)", Ok(Some(1.0))),
    ]);
    let result = judge(&fake, &request(&a, false)).await;
    assert_eq!(result.verdict, Verdict::Inconclusive);
    assert_eq!(names(&result), ["error-rate", "latency-p95", "ttft"]);
    let reason = "Prometheus unreachable: cannot connect: connection refused";
    for c in &result.checks {
        assert_eq!(c.verdict, Verdict::Inconclusive);
        assert_eq!(c.value, None);
        assert_eq!(c.reason.as_deref(), Some(reason));
    }
    assert_eq!(check(&result, "ttft").threshold, "<= 2");
    assert!(unreachable(&result));
    assert_eq!(summary(&result), reason);
}

#[tokio::test]
async fn a_custom_query_error_only_affects_that_check() {
    let mut a = analysis();
    a.metrics = vec![
        custom("broken", "sum(", None, Some(1.0)),
        custom("ok", "vector(0.5)", None, Some(1.0)),
    ];
    let fake = Fake::new(&[
        (VOLUME, Ok(Some(100.0))),
        (ERRORS, Ok(Some(0.0))),
        (LATENCY, Ok(Some(0.3))),
        (
            "sum(",
            Err(SourceError::Query("bad_data: parse error".into())),
        ),
        ("vector(0.5)", Ok(Some(0.5))),
    ]);
    let result = judge(&fake, &request(&a, false)).await;
    fake.assert_asked_exactly_the_known_queries();
    assert_eq!(
        names(&result),
        ["error-rate", "latency-p95", "broken", "ok"]
    );
    let broken = check(&result, "broken");
    assert_eq!(broken.verdict, Verdict::Inconclusive);
    assert_eq!(
        broken.reason.as_deref(),
        Some("query error: bad_data: parse error")
    );
    assert_eq!(check(&result, "ok").verdict, Verdict::Pass);
    assert_eq!(result.verdict, Verdict::Inconclusive);
    assert!(!unreachable(&result));
}

#[tokio::test]
async fn custom_bounds_are_inclusive_and_shown_as_written() {
    // (min, max, value, verdict, threshold)
    type Case = (Option<f64>, Option<f64>, f64, Verdict, &'static str);
    let cases: &[Case] = &[
        (Some(0.9), None, 0.95, Verdict::Pass, ">= 0.9"),
        (Some(0.9), None, 0.9, Verdict::Pass, ">= 0.9"),
        (Some(0.9), None, 0.85, Verdict::Fail, ">= 0.9"),
        (None, Some(3.0), 3.0, Verdict::Pass, "<= 3"),
        (None, Some(3.0), 3.5, Verdict::Fail, "<= 3"),
        (Some(1.0), Some(5.0), 1.0, Verdict::Pass, "[1, 5]"),
        (Some(1.0), Some(5.0), 5.0, Verdict::Pass, "[1, 5]"),
        (Some(1.0), Some(5.0), 0.5, Verdict::Fail, "[1, 5]"),
        (Some(1.0), Some(5.0), 6.0, Verdict::Fail, "[1, 5]"),
    ];
    for &(min, max, value, verdict, threshold) in cases {
        let mut a = analysis();
        a.max_latency_p95 = None;
        a.metrics = vec![custom("m", "q", min, max)];
        let fake = Fake::new(&[
            (VOLUME, Ok(Some(100.0))),
            (ERRORS, Ok(Some(0.0))),
            ("q", Ok(Some(value))),
        ]);
        let result = judge(&fake, &request(&a, false)).await;
        let m = check(&result, "m");
        assert_eq!(
            (m.verdict, m.threshold.as_str(), m.value),
            (verdict, threshold, Some(value)),
            "min {min:?} max {max:?} value {value}"
        );
        assert_eq!(result.verdict, verdict);
    }
}

#[tokio::test]
async fn custom_checks_are_not_gated_by_min_requests_but_need_data() {
    let mut a = analysis();
    a.max_latency_p95 = None;
    a.metrics = vec![
        custom("gpu-util", "g", Some(0.2), None),
        custom("nan", "n", None, Some(1.0)),
        custom("empty", "e", None, Some(1.0)),
    ];
    let fake = Fake::new(&[
        (VOLUME, Ok(Some(3.0))),
        (ERRORS, Ok(Some(0.0))),
        ("g", Ok(Some(0.7))),
        ("n", Ok(Some(f64::NAN))),
        ("e", Ok(None)),
    ]);
    let result = judge(&fake, &request(&a, false)).await;
    assert_eq!(check(&result, "error-rate").verdict, Verdict::Inconclusive);
    assert_eq!(check(&result, "gpu-util").verdict, Verdict::Pass);
    let nan = check(&result, "nan");
    assert_eq!(
        (nan.verdict, nan.reason.as_deref()),
        (Verdict::Inconclusive, Some("query returned NaN (no data)"))
    );
    let empty = check(&result, "empty");
    assert_eq!(
        (empty.verdict, empty.reason.as_deref()),
        (Verdict::Inconclusive, Some("query returned no data"))
    );
}

#[tokio::test]
async fn custom_queries_get_their_placeholders_substituted_and_escaped() {
    let mut a = analysis();
    a.max_latency_p95 = None;
    a.window = Some(Duration::from("2m"));
    a.metrics = vec![custom(
        "ttft-p90",
        r#"histogram_quantile(0.9, sum by (le) (rate(switchyard_time_to_first_token_seconds_bucket{namespace="{{namespace}}",route="{{route}}",backend=~"{{backend}}"}[{{interval}}])))"#,
        None,
        Some(1.0),
    )];
    let mut req = request(&a, false);
    req.gaining = vec!["gpu.v2".into(), "openai".into()];
    let sel = |b: &str| format!(r#"namespace="prod",route="chat",backend=~"{b}""#);
    let mut answers = vec![];
    for b in [r"gpu\\.v2", "openai"] {
        let sel = sel(b);
        answers.push((
            format!(
                r#"sum(increase(switchyard_requests_total{{{sel},outcome!~"shadow|client_error|eval"}}[120s]))"#
            ),
            Ok(Some(400.0)),
        ));
        answers.push((
            format!(
                r#"sum(rate(switchyard_request_duration_seconds_count{{{sel},outcome=~"error|failover|unavailable"}}[120s])) / sum(rate(switchyard_request_duration_seconds_count{{{sel},outcome!~"shadow|client_error|eval"}}[120s]))"#
            ),
            Ok(Some(0.0)),
        ));
    }
    let all = sel(r"gpu\\.v2|openai");
    answers.push((
        format!(
            r#"histogram_quantile(0.9, sum by (le) (rate(switchyard_time_to_first_token_seconds_bucket{{{all}}}[120s])))"#
        ),
        Ok(Some(0.8)),
    ));
    let answers: Vec<(&str, Answer)> = answers
        .iter()
        .map(|(q, a)| (q.as_str(), a.clone()))
        .collect();
    let fake = Fake::new(&answers);
    let result = run(&fake, &req, now()).await;
    assert_eq!(result.window, Some(Duration::from("2m")));
    fake.assert_asked_exactly_the_known_queries();
    assert_eq!(result.verdict, Verdict::Pass, "{result:?}");
    assert_eq!(
        result.checks[0].reason, None,
        "the volume is measured over the 2m window"
    );
    assert_eq!(
        result
            .checks
            .iter()
            .map(|c| (c.name.as_str(), c.backend.as_deref()))
            .collect::<Vec<_>>(),
        [
            ("error-rate", Some("gpu.v2")),
            ("error-rate", Some("openai")),
            ("ttft-p90", None)
        ],
        "each gaining backend is judged on its own"
    );
}

#[tokio::test]
async fn a_token_difference_over_five_percent_fails_either_way() {
    for (shadow, reason) in [
        (
            440.0,
            "shadow 440 vs baseline 400 output tokens per request (+10.0%)",
        ),
        (
            360.0,
            "shadow 360 vs baseline 400 output tokens per request (-10.0%)",
        ),
    ] {
        let a = analysis();
        let fake = Fake::new(&[
            (SHADOW_VOLUME, Ok(Some(100.0))),
            (SHADOW_ERRORS, Ok(Some(0.0))),
            (SHADOW_LATENCY, Ok(Some(0.5))),
            (SHADOW_TOKENS, Ok(Some(shadow))),
            (BASELINE_TOKENS, Ok(Some(400.0))),
        ]);
        let result = judge(&fake, &request(&a, true)).await;
        let tokens = check(&result, "token-difference");
        assert_eq!(tokens.verdict, Verdict::Fail);
        assert!((tokens.value.unwrap() - 0.1).abs() < 1e-12);
        assert_eq!(tokens.reason.as_deref(), Some(reason));
        assert_eq!(result.verdict, Verdict::Fail);
        assert_eq!(
            summary(&result),
            format!(
                "error-rate of vllm 0 <= 0.005 (Pass); latency-p95 of vllm 0.5 <= 2 (Pass); token-difference of vllm 0.1 > 0.05 (Fail: {reason})"
            )
        );
    }
}

#[tokio::test]
async fn a_token_difference_without_data_on_either_side_is_inconclusive() {
    let cases: [(Answer, Answer, &str); 4] = [
        (
            Ok(None),
            Ok(Some(400.0)),
            "no output tokens per request for the shadow traffic of vllm",
        ),
        (
            Ok(Some(400.0)),
            Ok(Some(f64::NAN)),
            "no output tokens per request for the baseline openai",
        ),
        (
            Ok(Some(400.0)),
            Ok(Some(0.0)),
            "the baseline reports no output tokens to compare with",
        ),
        (
            Ok(Some(400.0)),
            Err(SourceError::Query("execution: boom".into())),
            "query error: execution: boom",
        ),
    ];
    for (shadow, baseline, reason) in cases {
        let a = analysis();
        let fake = Fake::new(&[
            (SHADOW_VOLUME, Ok(Some(100.0))),
            (SHADOW_ERRORS, Ok(Some(0.0))),
            (SHADOW_LATENCY, Ok(Some(0.5))),
            (SHADOW_TOKENS, shadow),
            (BASELINE_TOKENS, baseline),
        ]);
        let result = judge(&fake, &request(&a, true)).await;
        let tokens = check(&result, "token-difference");
        assert_eq!(
            (tokens.verdict, tokens.value, tokens.reason.as_deref()),
            (Verdict::Inconclusive, None, Some(reason))
        );
        assert_eq!(result.verdict, Verdict::Inconclusive);
    }
}

#[tokio::test]
async fn no_baseline_backends_means_no_baseline_query() {
    let a = analysis();
    let fake = Fake::new(&[
        (SHADOW_VOLUME, Ok(Some(100.0))),
        (SHADOW_ERRORS, Ok(Some(0.0))),
        (SHADOW_LATENCY, Ok(Some(0.5))),
        (SHADOW_TOKENS, Ok(Some(400.0))),
    ]);
    let mut req = request(&a, true);
    req.baseline.clear();
    let result = judge(&fake, &req).await;
    fake.assert_asked_exactly_the_known_queries();
    assert_eq!(
        check(&result, "token-difference").reason.as_deref(),
        Some("no baseline backends to compare with")
    );
}

#[tokio::test]
async fn nothing_is_queried_without_gaining_backends_or_a_usable_interval() {
    let a = analysis();
    let fake = Fake::default();
    let mut req = request(&a, false);
    req.gaining.clear();
    let result = judge(&fake, &req).await;
    assert!(fake.asked().is_empty());
    assert_eq!(result.verdict, Verdict::Inconclusive);
    assert_eq!(names(&result), ["error-rate"]);
    assert_eq!(
        result.checks[0].reason.as_deref(),
        Some("no backend gains traffic in this step, so there is nothing to judge")
    );

    let mut bad = analysis();
    bad.interval = Duration::from("soon");
    let result = judge(&fake, &request(&bad, false)).await;
    assert!(fake.asked().is_empty());
    assert!(
        result
            .checks
            .iter()
            .all(|c| c.verdict == Verdict::Inconclusive
                && c.reason
                    .as_deref()
                    .is_some_and(|r| r.starts_with("analysis.interval is not usable"))),
        "{result:?}"
    );
}

#[test]
fn the_overall_verdict_is_the_worst() {
    let c = |verdict| CheckResult {
        backend: None,
        name: "x".into(),
        value: None,
        baseline: None,
        threshold: "<= 1".into(),
        verdict,
        reason: None,
    };
    use Verdict::*;
    assert_eq!(overall(&[]), Pass);
    assert_eq!(overall(&[c(Pass), c(Pass)]), Pass);
    assert_eq!(overall(&[c(Pass), c(Inconclusive)]), Inconclusive);
    assert_eq!(overall(&[c(Fail), c(Inconclusive), c(Pass)]), Fail);
    assert_eq!(overall(&[c(Inconclusive), c(Fail)]), Fail);
}

#[test]
fn summary_words_ranges_and_valueless_checks() {
    let c = |name: &str, value, threshold: &str, verdict, reason: Option<&str>| CheckResult {
        backend: None,
        name: name.into(),
        value,
        baseline: None,
        threshold: threshold.into(),
        verdict,
        reason: reason.map(str::to_owned),
    };
    let result = AnalysisResult {
        window: None,
        time: Time(now()),
        verdict: Verdict::Fail,
        checks: vec![
            c("a", Some(3.0), "[1, 5]", Verdict::Pass, None),
            c("b", Some(7.123456), "[1, 5]", Verdict::Fail, None),
            c("c", Some(0.5), ">= 0.9", Verdict::Fail, None),
            c("d", None, "<= 1", Verdict::Inconclusive, Some("no data")),
            c("e", None, "<= 1", Verdict::Fail, Some("too slow")),
        ],
    };
    assert_eq!(
        summary(&result),
        "a 3 in [1, 5] (Pass); b 7.12 outside [1, 5] (Fail); c 0.5 < 0.9 (Fail); d (Inconclusive: no data); e (Fail: too slow)"
    );
}

#[test]
fn values_are_shown_to_three_significant_digits() {
    assert_eq!(format_value(0.0), "0");
    assert_eq!(format_value(0.052), "0.052");
    assert_eq!(format_value(0.0523412), "0.0523");
    assert_eq!(format_value(0.41), "0.41");
    assert_eq!(format_value(2.0), "2");
    assert_eq!(format_value(412.34), "412");
    assert_eq!(format_value(123456.7), "123457");
    assert_eq!(format_value(-0.1234), "-0.123");
    assert_eq!(format_value(0.000012345), "0.0000123");
}

#[test]
fn run_can_be_spawned() {
    fn assert_send<T: Send>(_: &T) {}
    let prom = Prometheus::new("http://prometheus.monitoring:9090").unwrap();
    let a = analysis();
    let req = request(&a, false);
    let fut = run(&prom, &req, now());
    assert_send(&fut);
}

fn live_queries(backend: &str) -> (String, String) {
    let sel = format!(r#"namespace="prod",route="chat",backend=~"{backend}""#);
    (
        format!(
            r#"sum(increase(switchyard_requests_total{{{sel},outcome!~"shadow|client_error|eval"}}[60s]))"#
        ),
        format!(
            r#"sum(rate(switchyard_request_duration_seconds_count{{{sel},outcome=~"error|failover|unavailable"}}[60s])) / sum(rate(switchyard_request_duration_seconds_count{{{sel},outcome!~"shadow|client_error|eval"}}[60s]))"#
        ),
    )
}

/// Issue 8: in a three-way migration a bad backend was diluted by a good one (one query over
/// both). Each is judged on its own and the failing one is named.
#[tokio::test]
async fn a_bad_backend_is_not_diluted_by_a_good_one() {
    let mut a = analysis();
    a.max_latency_p95 = None;
    let (good_volume, good_errors) = live_queries("good");
    let (bad_volume, bad_errors) = live_queries("bad");
    let fake = Fake::new(&[
        (&good_volume, Ok(Some(900.0))),
        (&good_errors, Ok(Some(0.0))),
        (&bad_volume, Ok(Some(100.0))),
        (&bad_errors, Ok(Some(0.04))),
    ]);
    let mut req = request(&a, false);
    req.gaining = vec!["good".into(), "bad".into()];
    let result = judge(&fake, &req).await;
    fake.assert_asked_exactly_the_known_queries();
    assert_eq!(result.verdict, Verdict::Fail);
    let failed: Vec<_> = result
        .checks
        .iter()
        .filter(|c| c.verdict == Verdict::Fail)
        .map(|c| c.backend.as_deref())
        .collect();
    assert_eq!(failed, [Some("bad")]);
    assert!(
        summary(&result).contains("error-rate of bad 0.04 > 0.005 (Fail)"),
        "{}",
        summary(&result)
    );
}

/// Issue 8: a canary that fails every request (or is unavailable for every pick) below
/// minRequests was only inconclusive and held.
#[tokio::test]
async fn every_attempt_failing_fails_below_min_requests() {
    let a = analysis();
    let fake = live(Ok(Some(12.0)), Ok(Some(1.0)), Ok(None));
    let result = judge(&fake, &request(&a, false)).await;
    let errors = check(&result, "error-rate");
    assert_eq!(errors.verdict, Verdict::Fail, "{result:?}");
    assert!(
        errors
            .reason
            .as_deref()
            .unwrap()
            .contains("every one of the 12 attempts in 1m failed"),
        "{errors:?}"
    );
    assert_eq!(result.verdict, Verdict::Fail);
    // Mostly failing is still just too little traffic.
    let fake = live(Ok(Some(12.0)), Ok(Some(0.9)), Ok(None));
    let result = judge(&fake, &request(&a, false)).await;
    assert_eq!(result.verdict, Verdict::Inconclusive);
}

/// Issue 8: `or vector(0)` and ignored warnings turned missing series into a 0% error rate.
#[tokio::test]
async fn partial_data_is_never_a_zero_error_rate() {
    let a = analysis();
    let fake = live(
        Ok(Some(500.0)),
        Err(SourceError::Partial(
            "remote read from store-2 failed".into(),
        )),
        Ok(Some(0.3)),
    );
    let result = judge(&fake, &request(&a, false)).await;
    let errors = check(&result, "error-rate");
    assert_eq!(
        (errors.verdict, errors.value, errors.reason.as_deref()),
        (
            Verdict::Inconclusive,
            None,
            Some("Prometheus returned partial data: remote read from store-2 failed")
        )
    );
    // A missing error series is no data, never 0.
    let fake = live(Ok(Some(500.0)), Ok(None), Ok(Some(0.3)));
    let result = judge(&fake, &request(&a, false)).await;
    assert_eq!(check(&result, "error-rate").verdict, Verdict::Inconclusive);
    assert!(!ERRORS.contains("vector(0)"));
}

/// Issue 8: the window is its own setting, at least four scrape intervals, and a window that
/// cannot work says so instead of measuring nothing.
#[tokio::test]
async fn the_window_fits_the_scrape_interval() {
    let a = analysis();
    assert_eq!(
        window(&a, Some(std::time::Duration::from_secs(60))),
        Ok(std::time::Duration::from_secs(240)),
        "default: four scrapes of Prometheus' 1m default, whatever the interval"
    );
    assert_eq!(
        window(&a, None),
        Ok(std::time::Duration::from_secs(240)),
        "unknown scrape interval: Prometheus' default assumed"
    );
    let mut short = analysis();
    short.window = Some(Duration::from("1m"));
    let fake = Fake::default();
    let mut req = request(&short, false);
    req.scrape_interval = Some(std::time::Duration::from_secs(60));
    let result = run(&fake, &req, now()).await;
    assert!(fake.asked().is_empty());
    assert_eq!(result.verdict, Verdict::Inconclusive);
    assert_eq!(result.window, None);
    assert_eq!(
        result.checks[0].reason.as_deref(),
        Some(
            "analysis.window 1m is shorter than 4 scrape intervals of Prometheus (1m each); set it to at least 4m or remove it to use that default"
        )
    );
}

mod relative;
