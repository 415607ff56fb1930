//! `switchyard_gateway_overhead_seconds`: what the gateway adds to a request, without the
//! time spent waiting for the upstream.

use serde_json::json;

use super::*;

/// Sum and count of the overhead histogram over all its series.
fn overhead(h: &Harness) -> (f64, u64) {
    let mut out = (0.0, 0);
    for mf in h.registry.gather() {
        if mf.name() == "switchyard_gateway_overhead_seconds" {
            for m in mf.get_metric() {
                out.0 += m.get_histogram().get_sample_sum();
                out.1 += m.get_histogram().get_sample_count();
            }
        }
    }
    out
}

#[tokio::test]
async fn the_gateway_measures_its_own_time_without_the_upstreams() {
    let slow = Upstream::always(|| {
        Reply::SlowBody(
            200,
            Duration::from_millis(300),
            json!({"choices": [{"message": {"role": "assistant", "content": "late"}}]}).to_string(),
        )
    })
    .await;
    let streamed = Upstream::always(|| {
        let mut events = openai_stream(&["a", "b"], Duration::ZERO);
        events[1].0 = Duration::from_millis(300);
        Reply::Sse(events)
    })
    .await;
    let h = Harness::new(
        World::new(
            route(&[("slow", 1)], &[]),
            vec![external("slow", "openai", &slow, json!({}))],
        ),
        config(),
    );
    for _ in 0..2 {
        assert_eq!(h.chat().await.status, 200);
    }
    let (sum, count) = overhead(&h);
    assert_eq!(count, 2, "one observation per request");
    assert!(
        sum / 2.0 < 0.1,
        "the upstream's 300 ms are not the gateway's: {sum}"
    );

    let h = Harness::new(
        World::new(
            route(&[("streamed", 1)], &[]),
            vec![external("streamed", "openai", &streamed, json!({}))],
        ),
        config(),
    );
    let a = h.chat_stream(Dialect::Openai).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let (sum, count) = overhead(&h);
    assert_eq!(count, 1);
    assert!(
        sum < 0.1,
        "waiting for the first token is not the gateway's: {sum}"
    );
}
