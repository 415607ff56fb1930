//! Writes the cost comparison of a route's two sides into `status.cost`: the arithmetic is
//! `analysis::cost`'s, this only turns its answer into the API's shape.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::analysis::Source;
use crate::analysis::cost::{self, Comparison, Side};
use crate::api::{self, CostComparison, CostSide};

/// The cost of `stable` against `candidate` on route `namespace/route` over `window` ending
/// at `at`; `None` (logged) when Prometheus cannot tell, so the last comparison stays.
/// During a migration the candidate is the backends gaining traffic; after cutover, the old
/// backends kept in shadow.
pub async fn compare<S: Source>(
    source: &S,
    namespace: &str,
    route: &str,
    stable: &[String],
    candidate: &[String],
    window: Duration,
    at: Timestamp,
) -> Option<CostComparison> {
    let req = cost::Request {
        namespace,
        route,
        stable,
        candidate,
        window,
    };
    match cost::compare(source, &req, at).await {
        Ok(c) => Some(to_status(&c)),
        Err(e) => {
            tracing::warn!(error = %e, "cost comparison skipped");
            None
        }
    }
}

pub fn to_status(c: &Comparison) -> CostComparison {
    CostComparison {
        time: Time(c.at),
        window: api::Duration(crate::duration::format(c.window)),
        stable: side(&c.stable),
        candidate: side(&c.candidate),
    }
}

fn side(s: &Side) -> CostSide {
    CostSide {
        backends: s.backends.clone(),
        requests: s.requests,
        tokens: s.tokens,
        cost: s.cost,
        per1k_requests: s.per_1k_requests(),
        per_million_tokens: s.per_million_tokens(),
    }
}
