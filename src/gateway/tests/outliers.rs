//! Outlier ejection seen from the outside: which backend or pod gets requests after
//! consecutive failures, and what /metrics says about it.

use serde_json::json;

use super::*;

fn failing() -> impl Fn() -> Reply + Send + Sync + 'static {
    || {
        Reply::Json(
            503,
            json!({"error": {"message": "down", "type": "server_error"}}),
        )
    }
}

#[tokio::test]
async fn five_consecutive_5xx_eject_an_external_backend() {
    let flaky = Upstream::always(failing()).await;
    let steady = Upstream::always(|| openai_answer("ok")).await;
    let h = Harness::new(
        World::new(
            route(&[("flaky", 50), ("steady", 50)], &[]),
            vec![
                external("flaky", "openai", &flaky, json!({})),
                external("steady", "openai", &steady, json!({})),
            ],
        ),
        config(),
    );
    for _ in 0..20 {
        let a = h.chat().await;
        assert_eq!(
            (a.status, a.backend.as_deref()),
            (200, Some("steady")),
            "{}",
            a.body
        );
    }
    assert_eq!(flaky.calls(), 5, "ejected after five consecutive 5xx");
    assert_eq!(h.attempts("flaky", "failover", Some("503")), 5.0);
    assert_eq!(h.attempts("flaky", "unavailable", Some("ejected")), 5.0);
    assert_eq!(
        h.metric(
            "switchyard_outlier_ejections_total",
            &[
                ("namespace", NS),
                ("backend", "flaky"),
                ("reason", "consecutive_5xx")
            ]
        ),
        1.0
    );
    assert_eq!(
        h.metric(
            "switchyard_endpoints_ejected",
            &[("namespace", NS), ("backend", "flaky")]
        ),
        1.0
    );
}

#[tokio::test]
async fn a_failing_pod_is_ejected_and_its_neighbour_serves() {
    let bad = Upstream::always(failing()).await;
    let good = Upstream::always(|| openai_answer("ok")).await;
    let (ib, slice) = self_hosted("llama", &[&bad, &good]);
    let mut world = World::new(route(&[("llama", 1)], &[]), vec![ib]);
    world.slices.push(slice);
    let h = Harness::new(world, config());
    let mut ok = 0;
    for _ in 0..40 {
        if h.chat().await.status == 200 {
            ok += 1;
        }
    }
    assert_eq!(
        bad.calls(),
        5,
        "the pod is ejected after five consecutive 5xx"
    );
    assert!(
        ok >= 35 && good.calls() == ok,
        "{ok} answered, good pod {}",
        good.calls()
    );
    assert_eq!(
        h.metric(
            "switchyard_endpoints_ejected",
            &[("namespace", NS), ("backend", "llama")]
        ),
        1.0
    );
}

#[tokio::test]
async fn below_half_healthy_the_split_panics_and_uses_every_backend() {
    let flaky = Upstream::always(failing()).await;
    let steady = Upstream::always(|| openai_answer("ok")).await;
    let backends = || {
        vec![
            external("flaky", "openai", &flaky, json!({})),
            external("steady", "openai", &steady, json!({})),
        ]
    };
    let h = Harness::new(
        World::new(route(&[("flaky", 60), ("steady", 40)], &[]), backends()),
        config(),
    );
    for _ in 0..20 {
        assert_eq!(h.chat().await.status, 200);
    }
    // Ejecting flaky would leave 40% of the split healthy: Envoy's panic mode routes by
    // plain weight, so flaky keeps its landings (each fails over to steady).
    assert_eq!(flaky.calls(), 12);
    assert_eq!(h.attempts("flaky", "unavailable", None), 0.0);
}
