//! Checks relative to the stable backends, against the same exact-PromQL fake.

use super::*;
use crate::api::{RelativeChecks, RelativeLatency, RelativeRate, RelativeTokens};

const STABLE_VOLUME: &str = r#"sum(increase(switchyard_requests_total{namespace="prod",route="chat",backend=~"openai",outcome!~"shadow|client_error|eval"}[60s]))"#;
const TTFT: &str = r#"histogram_quantile(0.95, sum by (le) (rate(switchyard_time_to_first_token_seconds_bucket{namespace="prod",route="chat",backend=~"vllm"}[60s])))"#;
const STABLE_TTFT: &str = r#"histogram_quantile(0.95, sum by (le) (rate(switchyard_time_to_first_token_seconds_bucket{namespace="prod",route="chat",backend=~"openai"}[60s])))"#;
const STABLE_ERRORS: &str = r#"sum(rate(switchyard_request_duration_seconds_count{namespace="prod",route="chat",backend=~"openai",outcome=~"error|failover|unavailable"}[60s])) / sum(rate(switchyard_request_duration_seconds_count{namespace="prod",route="chat",backend=~"openai",outcome!~"shadow|client_error|eval"}[60s]))"#;
const STABLE_LATENCY: &str = r#"histogram_quantile(0.95, sum by (le) (rate(switchyard_request_duration_seconds_bucket{namespace="prod",route="chat",backend=~"openai",outcome="success"}[60s])))"#;
const TOKENS: &str = r#"sum(rate(switchyard_tokens_total{namespace="prod",route="chat",backend=~"vllm",type="output",tenant!="switchyard:eval"}[60s])) / sum(rate(switchyard_requests_total{namespace="prod",route="chat",backend=~"vllm",outcome="success"}[60s]))"#;

fn ttft_only() -> Analysis {
    Analysis {
        relative: Some(RelativeChecks {
            ttft_p95: Some(RelativeLatency {
                max_increase: 0.015,
                floor: Duration::from("50ms"),
            }),
            ..RelativeChecks::default()
        }),
        ..analysis()
    }
}

/// The absolute checks pass (no errors, p95 well under 2 s); only TTFT differs.
fn with_ttft(ttft: f64, stable_ttft: f64, stable_volume: f64) -> Fake {
    Fake::new(&[
        (VOLUME, Ok(Some(120.0))),
        (ERRORS, Ok(Some(0.0))),
        (LATENCY, Ok(Some(0.9))),
        (STABLE_VOLUME, Ok(Some(stable_volume))),
        (TTFT, Ok(Some(ttft))),
        (STABLE_TTFT, Ok(Some(stable_ttft))),
    ])
}

#[tokio::test]
async fn a_ttft_regression_alone_fails_with_both_sides_reported() {
    let a = ttft_only();
    let fake = with_ttft(0.82, 0.31, 2000.0);
    let result = judge(&fake, &request(&a, false)).await;
    fake.assert_asked_exactly_the_known_queries();
    assert_eq!(result.verdict, Verdict::Fail, "{result:?}");
    assert_eq!(check(&result, "error-rate").verdict, Verdict::Pass);
    assert_eq!(check(&result, "latency-p95").verdict, Verdict::Pass);
    let ttft = check(&result, "ttft-p95-vs-stable");
    assert_eq!(ttft.backend.as_deref(), Some("vllm"));
    assert_eq!((ttft.value, ttft.baseline), (Some(0.82), Some(0.31)));
    // 0.31 + max(1.5% of it, 50 ms floor)
    assert_eq!(ttft.threshold, "<= 0.36");
    assert_eq!(ttft.verdict, Verdict::Fail);
    assert_eq!(
        ttft.reason.as_deref(),
        Some("vllm 0.82 s vs stable 0.31 s (+164.5%); tolerated +1.5% of it or 0.05 s")
    );
    assert!(
        summary(&result).contains("ttft-p95-vs-stable of vllm 0.82 > 0.36 (Fail"),
        "{}",
        summary(&result)
    );
}

#[tokio::test]
async fn an_increase_within_the_floor_passes_and_the_share_decides_above_it() {
    let a = ttft_only();
    // +10% but only 30 ms: within the 50 ms floor, so histogram resolution cannot fail it.
    let result = judge(&with_ttft(0.33, 0.30, 2000.0), &request(&a, false)).await;
    assert_eq!(check(&result, "ttft-p95-vs-stable").verdict, Verdict::Pass);
    // At 10 s the 1.5% share (150 ms) is above the floor: +100 ms passes, +200 ms fails.
    let result = judge(&with_ttft(10.1, 10.0, 2000.0), &request(&a, false)).await;
    let c = check(&result, "ttft-p95-vs-stable");
    assert_eq!(
        (c.verdict, c.threshold.as_str()),
        (Verdict::Pass, "<= 10.15")
    );
    let result = judge(&with_ttft(10.2, 10.0, 2000.0), &request(&a, false)).await;
    assert_eq!(check(&result, "ttft-p95-vs-stable").verdict, Verdict::Fail);
}

#[tokio::test]
async fn too_little_stable_traffic_is_inconclusive_with_both_values() {
    let a = ttft_only();
    let result = judge(&with_ttft(0.82, 0.31, 12.0), &request(&a, false)).await;
    let c = check(&result, "ttft-p95-vs-stable");
    assert_eq!(c.verdict, Verdict::Inconclusive);
    assert_eq!((c.value, c.baseline), (Some(0.82), Some(0.31)));
    assert_eq!(
        c.reason.as_deref(),
        Some("12 requests to the stable backends in 1m, fewer than minRequests 50")
    );
}

#[tokio::test]
async fn a_gaining_p95_above_every_bucket_fails_against_a_measured_stable() {
    let a = ttft_only();
    let result = judge(&with_ttft(f64::INFINITY, 0.31, 2000.0), &request(&a, false)).await;
    let c = check(&result, "ttft-p95-vs-stable");
    assert_eq!(
        (c.verdict, c.value, c.baseline),
        (Verdict::Fail, None, Some(0.31))
    );
}

#[tokio::test]
async fn no_stable_data_is_inconclusive_never_a_pass() {
    let a = ttft_only();
    let fake = Fake::new(&[
        (VOLUME, Ok(Some(120.0))),
        (ERRORS, Ok(Some(0.0))),
        (LATENCY, Ok(Some(0.9))),
        (STABLE_VOLUME, Ok(Some(2000.0))),
        (TTFT, Ok(Some(0.3))),
        (STABLE_TTFT, Ok(None)),
    ]);
    let c = check(
        &judge(&fake, &request(&a, false)).await,
        "ttft-p95-vs-stable",
    )
    .clone();
    assert_eq!(c.verdict, Verdict::Inconclusive);
    assert_eq!(
        c.reason.as_deref(),
        Some("stable backends: query returned no data")
    );
}

#[tokio::test]
async fn every_relative_check_shares_the_stable_queries() {
    let a = Analysis {
        relative: Some(RelativeChecks {
            error_rate: Some(RelativeRate {
                max_increase: 0.5,
                floor: 0.005,
            }),
            latency_p95: Some(RelativeLatency {
                max_increase: 0.1,
                floor: Duration::from("50ms"),
            }),
            ttft_p95: None,
            output_tokens: Some(RelativeTokens {
                max_difference: 0.05,
                floor: 2.0,
            }),
        }),
        ..analysis()
    };
    let fake = Fake::new(&[
        (VOLUME, Ok(Some(120.0))),
        (ERRORS, Ok(Some(0.004))),
        (LATENCY, Ok(Some(0.9))),
        (STABLE_VOLUME, Ok(Some(2000.0))),
        (STABLE_ERRORS, Ok(Some(0.002))),
        (STABLE_LATENCY, Ok(Some(0.85))),
        (TOKENS, Ok(Some(80.0))),
        (BASELINE_TOKENS, Ok(Some(100.0))),
    ]);
    let result = judge(&fake, &request(&a, false)).await;
    // Each PromQL once, though the latency one serves two checks' needs.
    fake.assert_asked_exactly_the_known_queries();
    assert_eq!(
        names(&result),
        [
            "error-rate",
            "latency-p95",
            "error-rate-vs-stable",
            "latency-p95-vs-stable",
            "output-tokens-vs-stable"
        ]
    );
    // 0.004 against 0.002: double, but within the half-percent floor.
    assert_eq!(
        check(&result, "error-rate-vs-stable").verdict,
        Verdict::Pass
    );
    assert_eq!(check(&result, "error-rate-vs-stable").threshold, "<= 0.007");
    assert_eq!(
        check(&result, "latency-p95-vs-stable").verdict,
        Verdict::Pass
    );
    // Answers 20% shorter than today's: two-sided, so it fails.
    let tokens = check(&result, "output-tokens-vs-stable");
    assert_eq!(tokens.threshold, "[95, 105]");
    assert_eq!(tokens.verdict, Verdict::Fail);
    assert_eq!((tokens.value, tokens.baseline), (Some(80.0), Some(100.0)));
}

#[tokio::test]
async fn with_no_stable_backend_outside_the_gaining_ones_it_is_inconclusive() {
    let a = ttft_only();
    let mut req = request(&a, false);
    req.baseline = vec!["vllm".into()];
    let fake = live(Ok(Some(120.0)), Ok(Some(0.0)), Ok(Some(0.9)));
    let result = judge(&fake, &req).await;
    fake.assert_asked_exactly_the_known_queries();
    let c = check(&result, "ttft-p95-vs-stable");
    assert_eq!(c.verdict, Verdict::Inconclusive);
    assert!(
        c.reason.as_deref().unwrap().contains("no stable backend"),
        "{c:?}"
    );
}

#[tokio::test]
async fn the_mirror_phase_skips_ttft_as_copies_are_never_streamed() {
    let a = ttft_only();
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
}

/// After a cutover the roles swap: the old backend's copies are judged (shadow queries) and
/// the new stable backend's live traffic is the baseline, so a wordier old backend fails
/// `output-tokens-vs-stable` with its value above the new split's.
#[tokio::test]
async fn the_post_cutover_shadow_judges_the_old_backends_copies_against_the_new_split() {
    let a = Analysis {
        relative: Some(RelativeChecks {
            output_tokens: Some(RelativeTokens {
                max_difference: 0.2,
                floor: 2.0,
            }),
            ..RelativeChecks::default()
        }),
        ..analysis()
    };
    let req = Request {
        gaining: vec!["openai".into()],
        baseline: vec!["vllm".into()],
        ..request(&a, true)
    };
    // The mirror-phase queries with the backends swapped: shadow side openai, live side vllm.
    let old = |q: &str| q.replace(r#"backend=~"vllm""#, r#"backend=~"openai""#);
    let new = |q: &str| q.replace(r#"backend=~"openai""#, r#"backend=~"vllm""#);
    let fake = Fake::new(&[
        (&old(SHADOW_VOLUME), Ok(Some(80.0))),
        (&old(SHADOW_ERRORS), Ok(Some(0.0))),
        (&old(SHADOW_LATENCY), Ok(Some(0.4))),
        (&old(SHADOW_TOKENS), Ok(Some(29.6))),
        (&new(BASELINE_TOKENS), Ok(Some(20.0))),
        (&new(STABLE_VOLUME), Ok(Some(200.0))),
    ]);
    let result = judge(&fake, &req).await;
    fake.assert_asked_exactly_the_known_queries();
    let c = check(&result, "output-tokens-vs-stable");
    assert_eq!(c.backend.as_deref(), Some("openai"));
    assert_eq!((c.value, c.baseline), (Some(29.6), Some(20.0)));
    assert_eq!(c.verdict, Verdict::Fail);
    assert_eq!(check(&result, "token-difference").verdict, Verdict::Fail);
    assert_eq!(check(&result, "error-rate").verdict, Verdict::Pass);
}

#[tokio::test]
async fn at_a_full_cutovers_last_step_the_absolute_checks_judge_alone() {
    // The stable split serves nothing live at 100%: no same-window baseline exists, and a
    // relative check that could only be inconclusive would roll a healthy migration back.
    let a = ttft_only();
    let mut req = request(&a, false);
    req.baseline = vec![];
    let fake = live(Ok(Some(120.0)), Ok(Some(0.0)), Ok(Some(0.9)));
    let result = judge(&fake, &req).await;
    fake.assert_asked_exactly_the_known_queries();
    assert_eq!(result.verdict, Verdict::Pass);
    assert!(
        result
            .checks
            .iter()
            .all(|c| !c.name.ends_with("-vs-stable")),
        "{result:?}"
    );
}
