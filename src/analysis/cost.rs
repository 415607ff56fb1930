//! What two sets of backends of one route cost over a window, from the gateway's counters:
//! the stable backends against the ones gaining traffic during a migration (or, after
//! cutover, the new stable against the old ones kept in shadow).
//!
//! Per side, over the window ending at one instant: the cost (`switchyard_cost_total`, the
//! tokens at each backend's `pricing`), the successful requests (live `success` attempts and
//! 2xx shadow copies) and the tokens (input, cached input included, plus output), and from
//! them the cost per 1,000 requests and per million tokens.
//!
//! Each counter is read as its growth between the window's ends ([`growth`]), not with
//! `increase()`: Prometheus extrapolates `increase()` to the window's edges, which makes a
//! total differ from what the gateway counted; the growth is exactly the gateway's count.

use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::jiff::Timestamp;

use super::queries::{alternation, escape_string, render_window};
use super::source::{Source, SourceError};

pub const COST: &str = "switchyard_cost_total";
pub const REQUESTS: &str = "switchyard_requests_total";
pub const TOKENS: &str = "switchyard_tokens_total";
/// Requests that count towards the cost per request: answered live, or answered as a
/// shadow copy (the candidate's only traffic in a mirror phase, or the old backends' after
/// cutover). Failed attempts carry no tokens.
pub const ANSWERED: &str = r#"outcome=~"success|shadow",code=~"2..""#;
/// Requests the cost command counts: `ANSWERED` and the controller's evaluation replays,
/// which cost money too and show as tenant `switchyard:eval`.
pub const ANSWERED_OR_REPLAYED: &str = r#"outcome=~"success|shadow|eval",code=~"2..""#;
/// What the route's traffic spends, without the controller's evaluation replays: they
/// would raise the new backends' cost per request in a comparison of live traffic.
pub const NOT_REPLAYED: &str = r#"tenant!="switchyard:eval""#;
/// Every token once: `input` counts cached input too.
pub const ALL_TOKENS: &str = r#"type=~"input|output""#;

/// PromQL for how much each series of counter `metric{selector}` grew over `window` before
/// the evaluation instant: its last value in the window less its value at the window's start.
/// A series born within the window (the gateway creates each on first use) grew from 0; a
/// series that went back (its gateway restarted) counts from its restart. A gateway replica
/// that went away within the window still counts up to its last scrape.
pub fn growth(metric: &str, selector: &str, window: Duration) -> String {
    let w = render_window(window);
    let end = format!("last_over_time({metric}{{{selector}}}[{w}])");
    let start = format!("{metric}{{{selector}}} offset {w}");
    format!("(({end} - {start}) >= 0 or {end})")
}

/// `namespace="..",route="..",backend=~"a|b"`, every value escaped.
pub fn selector(namespace: &str, route: &str, backends: &[String]) -> String {
    format!(
        r#"namespace="{}",route="{}",backend=~"{}""#,
        escape_string(namespace),
        escape_string(route),
        escape_string(&alternation(backends))
    )
}

/// One side's measurements over the window.
#[derive(Debug, Clone, PartialEq)]
pub struct Side {
    pub backends: Vec<String>,
    /// Successful requests.
    pub requests: f64,
    /// Input (cached included) and output tokens.
    pub tokens: f64,
    /// `None` when no backend of the side has `pricing`.
    pub cost: Option<f64>,
}

impl Side {
    pub fn per_1k_requests(&self) -> Option<f64> {
        ratio(self.cost?, self.requests, 1_000.0)
    }

    pub fn per_million_tokens(&self) -> Option<f64> {
        ratio(self.cost?, self.tokens, 1_000_000.0)
    }
}

/// `cost / count × per`, none without a count to divide by.
pub fn ratio(cost: f64, count: f64, per: f64) -> Option<f64> {
    (count > 0.0 && cost.is_finite()).then(|| cost / count * per)
}

/// Both sides over one window.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// The instant every query was evaluated at (the window's end).
    pub at: Timestamp,
    pub window: Duration,
    pub stable: Side,
    pub candidate: Side,
}

/// What a route's query asks.
pub struct Request<'a> {
    pub namespace: &'a str,
    pub route: &'a str,
    /// The backends carrying the traffic the other side is compared with.
    pub stable: &'a [String],
    /// The backends gaining traffic, or kept in shadow after cutover.
    pub candidate: &'a [String],
    pub window: Duration,
}

/// The three queries of one side: cost, answered requests, tokens.
pub fn queries(namespace: &str, route: &str, backends: &[String], window: Duration) -> [String; 3] {
    let sel = selector(namespace, route, backends);
    [
        format!(
            "sum({})",
            growth(COST, &format!("{sel},{NOT_REPLAYED}"), window)
        ),
        format!(
            "sum({})",
            growth(REQUESTS, &format!("{sel},{ANSWERED}"), window)
        ),
        format!(
            "sum({})",
            growth(
                TOKENS,
                &format!("{sel},{ALL_TOKENS},{NOT_REPLAYED}"),
                window
            )
        ),
    ]
}

/// Measures both sides of `req` at the instant `at`, all queries at once. An unreachable
/// Prometheus, a rejected query or partial data is an error (no half-true comparison);
/// a side without traffic has zero requests and tokens, and no cost.
pub async fn compare<S: Source>(
    source: &S,
    req: &Request<'_>,
    at: Timestamp,
) -> Result<Comparison, SourceError> {
    let [stable, candidate] = [req.stable, req.candidate]
        .map(|backends| queries(req.namespace, req.route, backends, req.window));
    let all: Vec<&String> = stable.iter().chain(candidate.iter()).collect();
    let answers = join_all(all.iter().map(|q| source.query(q, at))).await;
    let mut values = Vec::with_capacity(answers.len());
    for a in answers {
        // NaN or ±Inf cannot come out of sums of counters; read them as no data.
        values.push(a?.filter(|v| v.is_finite()));
    }
    let side = |backends: &[String], v: &[Option<f64>]| Side {
        backends: backends.to_vec(),
        cost: v[0],
        requests: v[1].unwrap_or(0.0),
        tokens: v[2].unwrap_or(0.0),
    };
    Ok(Comparison {
        at,
        window: req.window,
        stable: side(req.stable, &values[..3]),
        candidate: side(req.candidate, &values[3..]),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::future::Future;

    use super::*;

    /// Answers exact PromQL strings, so a typo in a metric or matcher fails the test.
    struct Fake(HashMap<String, Result<Option<f64>, SourceError>>);

    impl Source for Fake {
        fn query(
            &self,
            promql: &str,
            _: Timestamp,
        ) -> impl Future<Output = Result<Option<f64>, SourceError>> + Send {
            let a =
                self.0.get(promql).cloned().unwrap_or_else(|| {
                    Err(SourceError::Query(format!("unexpected query {promql}")))
                });
            async move { a }
        }
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    fn at() -> Timestamp {
        Timestamp::from_second(1_700_000_000).unwrap()
    }

    #[test]
    fn the_queries_read_the_gateways_counters_as_their_growth() {
        let [cost, requests, tokens] = queries(
            "prod",
            "chat",
            &names(&["a", "b.c"]),
            Duration::from_secs(300),
        );
        assert_eq!(
            cost,
            r#"sum(((last_over_time(switchyard_cost_total{namespace="prod",route="chat",backend=~"a|b\\.c",tenant!="switchyard:eval"}[300s]) - switchyard_cost_total{namespace="prod",route="chat",backend=~"a|b\\.c",tenant!="switchyard:eval"} offset 300s) >= 0 or last_over_time(switchyard_cost_total{namespace="prod",route="chat",backend=~"a|b\\.c",tenant!="switchyard:eval"}[300s])))"#
        );
        assert!(
            requests.contains(r#"switchyard_requests_total{namespace="prod",route="chat",backend=~"a|b\\.c",outcome=~"success|shadow",code=~"2.."}"#),
            "{requests}"
        );
        assert!(
            tokens.contains(r#"switchyard_tokens_total{namespace="prod",route="chat",backend=~"a|b\\.c",type=~"input|output",tenant!="switchyard:eval"}"#),
            "{tokens}"
        );
    }

    #[tokio::test]
    async fn each_side_costs_per_1k_requests_and_per_million_tokens() {
        let window = Duration::from_secs(240);
        let stable = names(&["openai"]);
        let candidate = names(&["llama"]);
        let mut answers = HashMap::new();
        // OpenAI: 400 requests of 1,000 tokens for 2.00; Llama: 100 requests of 1,200 tokens
        // for 0.072, priced by total tokens at 0.60 per million.
        for (backends, v) in [
            (&stable, [2.0, 400.0, 400_000.0]),
            (&candidate, [0.072, 100.0, 120_000.0]),
        ] {
            for (q, v) in queries("prod", "chat", backends, window).into_iter().zip(v) {
                answers.insert(q, Ok(Some(v)));
            }
        }
        let req = Request {
            namespace: "prod",
            route: "chat",
            stable: &stable,
            candidate: &candidate,
            window,
        };
        let c = compare(&Fake(answers), &req, at()).await.unwrap();
        assert_eq!((c.at, c.window), (at(), window));
        assert_eq!(c.stable.per_1k_requests(), Some(5.0));
        assert_eq!(c.stable.per_million_tokens(), Some(5.0));
        let close = |a: Option<f64>, b: f64| (a.unwrap() - b).abs() < 1e-9;
        assert!(close(c.candidate.per_1k_requests(), 0.72), "{c:?}");
        assert!(close(c.candidate.per_million_tokens(), 0.6), "{c:?}");
        assert_eq!(c.candidate.backends, candidate);
    }

    #[tokio::test]
    async fn no_traffic_or_no_pricing_is_no_ratio_and_an_unreachable_prometheus_no_comparison() {
        let window = Duration::from_secs(60);
        let (stable, candidate) = (names(&["a"]), names(&["b"]));
        let mut answers = HashMap::new();
        let [_, requests, tokens] = queries("ns", "r", &stable, window);
        // `a` answered but has no pricing: no cost series at all; `b` had no traffic yet.
        answers.insert(requests, Ok(Some(10.0)));
        answers.insert(tokens, Ok(Some(100.0)));
        for q in queries("ns", "r", &candidate, window) {
            answers.insert(q, Ok(None));
        }
        answers.insert(queries("ns", "r", &stable, window)[0].clone(), Ok(None));
        let req = Request {
            namespace: "ns",
            route: "r",
            stable: &stable,
            candidate: &candidate,
            window,
        };
        let c = compare(&Fake(answers.clone()), &req, at()).await.unwrap();
        assert_eq!((c.stable.requests, c.stable.cost), (10.0, None));
        assert_eq!(c.stable.per_1k_requests(), None);
        assert_eq!(
            (c.candidate.requests, c.candidate.per_million_tokens()),
            (0.0, None)
        );

        answers.insert(
            queries("ns", "r", &candidate, window)[1].clone(),
            Err(SourceError::Unreachable("cannot connect".into())),
        );
        assert_eq!(
            compare(&Fake(answers), &req, at()).await,
            Err(SourceError::Unreachable("cannot connect".into()))
        );
    }
}
