use serde_json::json;

use super::*;

fn route(url: Option<&str>) -> ModelRoute {
    let mut spec = json!({"backends": [{"name": "a", "weight": 1}]});
    if let Some(u) = url {
        spec["rollout"] = json!({"analysis": {"prometheusUrl": u}});
    }
    serde_json::from_value(
        json!({"apiVersion": "switchyard.dev/v1alpha1", "kind": "ModelRoute",
        "metadata": {"name": "chat", "namespace": "prod"}, "spec": spec}),
    )
    .unwrap()
}

#[test]
fn the_prometheus_comes_from_the_flag_else_the_route_else_an_error_saying_what_to_set() {
    let with = route(Some("http://route:9090"));
    assert_eq!(
        prometheus_url(Some("http://flag:9090"), &with).unwrap(),
        "http://flag:9090"
    );
    assert_eq!(prometheus_url(None, &with).unwrap(), "http://route:9090");
    let err = prometheus_url(None, &route(None)).unwrap_err().to_string();
    for what in [
        "--prometheus-url",
        "SWITCHYARD_PROMETHEUS_URL",
        "spec.rollout.analysis.prometheusUrl",
    ] {
        assert!(err.contains(what), "{err}");
    }
}

#[test]
fn the_queries_sum_each_counters_growth_by_backend_or_tenant() {
    let [cost, requests, tokens] = queries("prod", "chat", Duration::from_secs(3600), By::Tenant);
    assert_eq!(
        cost,
        r#"sum by (tenant, backend) (((last_over_time(switchyard_cost_total{namespace="prod",route="chat"}[3600s]) - switchyard_cost_total{namespace="prod",route="chat"} offset 3600s) >= 0 or last_over_time(switchyard_cost_total{namespace="prod",route="chat"}[3600s])))"#
    );
    assert!(
        requests.starts_with("sum by (tenant, backend) ("),
        "{requests}"
    );
    assert!(
        requests.contains(r#"outcome=~"success|shadow|eval",code=~"2..""#),
        "{requests}"
    );
    assert!(
        tokens.starts_with("sum by (tenant, backend, type) ("),
        "{tokens}"
    );
    assert!(
        tokens.contains(r#"type=~"input|cached_input|output""#),
        "{tokens}"
    );
    let [cost, ..] = queries("prod", "chat", Duration::from_secs(60), By::Backend);
    assert!(cost.starts_with("sum by (backend) ("), "{cost}");
}

fn sample(pairs: &[(&str, &str)], v: f64) -> Sample {
    (
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        v,
    )
}

#[test]
fn rows_hold_counts_cost_and_ratios_and_the_total_adds_them_up() {
    let b = |name| [("backend", name)];
    let rows = rows(
        By::Backend,
        [
            // `self` has no pricing: no cost series.
            vec![sample(&b("openai"), 3.1)],
            vec![sample(&b("openai"), 1000.0), sample(&b("self"), 500.0)],
            vec![
                sample(&[("backend", "openai"), ("type", "input")], 1_000_000.0),
                sample(
                    &[("backend", "openai"), ("type", "cached_input")],
                    600_000.0,
                ),
                sample(&[("backend", "openai"), ("type", "output")], 200_000.0),
                sample(&[("backend", "self"), ("type", "input")], 50_000.0),
                sample(&[("backend", "self"), ("type", "output")], 10_000.0),
            ],
        ],
    );
    assert_eq!(rows.len(), 2);
    let openai = &rows[0];
    assert_eq!(
        (
            openai.backend.as_str(),
            openai.requests,
            openai.cached_input_tokens
        ),
        ("openai", 1000.0, 600_000.0)
    );
    assert!((openai.per1k_requests.unwrap() - 3.1).abs() < 1e-9);
    assert!((openai.per_million_tokens.unwrap() - 3.1 / 1.2).abs() < 1e-9);
    assert_eq!((rows[1].cost, rows[1].per1k_requests), (None, None));
    let t = total(&rows);
    assert_eq!(
        (t.requests, t.input_tokens, t.output_tokens),
        (1500.0, 1_050_000.0, 210_000.0)
    );
    assert!((t.per1k_requests.unwrap() - 3.1 / 1.5).abs() < 1e-9);
    let text = render(&Report {
        namespace: "prod".into(),
        route: "chat".into(),
        window: "1h".into(),
        time: String::new(),
        rows: rows.clone(),
        total: t,
    });
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[1].starts_with("BACKEND"), "{text}");
    assert!(
        lines[2].starts_with("openai") && lines[2].contains("3.100"),
        "{text}"
    );
    assert!(
        lines[3].starts_with("self") && lines[3].contains(" - "),
        "{text}"
    );
    assert!(lines[4].starts_with("TOTAL"), "{text}");
}

#[test]
fn by_tenant_each_tenant_and_backend_is_a_row() {
    let rows = rows(
        By::Tenant,
        [
            vec![
                sample(&[("tenant", "team-a"), ("backend", "x")], 1.0),
                sample(&[("tenant", "team-b"), ("backend", "x")], 2.0),
            ],
            vec![],
            vec![],
        ],
    );
    let keys: Vec<_> = rows
        .iter()
        .map(|r| (r.tenant.as_deref(), r.backend.as_str(), r.cost))
        .collect();
    assert_eq!(
        keys,
        [
            (Some("team-a"), "x", Some(1.0)),
            (Some("team-b"), "x", Some(2.0))
        ]
    );
}

#[test]
fn a_refused_query_or_partial_data_is_an_error_never_a_total() {
    let ok = json!({"status": "success", "data": {"resultType": "vector",
        "result": [{"metric": {"backend": "a"}, "value": [1, "2.5"]}]}});
    assert_eq!(
        parse_vector(&ok).unwrap(),
        vec![sample(&[("backend", "a")], 2.5)]
    );
    let partial = json!({"status": "success", "data": {"resultType": "vector", "result": []},
        "warnings": ["store-2 failed"]});
    assert!(
        parse_vector(&partial)
            .unwrap_err()
            .to_string()
            .contains("partial")
    );
    let refused = json!({"status": "error", "errorType": "bad_data", "error": "parse error"});
    assert!(
        parse_vector(&refused)
            .unwrap_err()
            .to_string()
            .contains("parse error")
    );
}
