//! What went wrong with one attempt, whether another tier may be tried, and how many
//! retries the gateway allows itself so that an outage cannot multiply load.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Why an attempt failed. Labels are fixed, for metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// TCP/TLS connect failed, or the connection broke.
    Connect,
    /// No answer within the backend's timeout (to the first byte, or between two parts of
    /// an answer), or past the request's deadline.
    Timeout,
    /// 429; `retry_after` from the header when given.
    RateLimited { retry_after: Option<Duration> },
    /// 5xx.
    Server { status: u16 },
    /// 401/403: the backend rejected the gateway's credential. Not the client's fault, and
    /// another backend has its own credential.
    Auth { status: u16 },
    /// A 2xx whose body is not what the dialect promises.
    Malformed,
    /// 404 for the backend's own model id or URL: the backend's configuration is wrong, not
    /// the caller's request (the gateway chose both), so another backend may serve it.
    NotFound,
    /// 400, 413, 422 and other 4xx: the request itself is wrong; another backend would say
    /// the same.
    Client { status: u16 },
}

impl Failure {
    /// Whether trying the next tier can help.
    pub fn retryable(&self) -> bool {
        !matches!(self, Failure::Client { .. })
    }

    /// How long the backend asked not to be called again.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Failure::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }

    /// Whether this counts towards ejecting the host as an outlier: 5xx and locally
    /// originated failures, as Envoy's `consecutive_5xx` counts them.
    pub fn is_host_failure(&self) -> bool {
        matches!(
            self,
            Failure::Server { .. } | Failure::Connect | Failure::Timeout
        )
    }

    pub fn reason(&self) -> &'static str {
        match self {
            Failure::Connect => "connect",
            Failure::Timeout => "timeout",
            Failure::RateLimited { .. } => "rate_limited",
            Failure::Server { .. } => "server_error",
            Failure::Auth { .. } => "auth",
            Failure::Malformed => "malformed",
            Failure::NotFound => "not_found",
            Failure::Client { .. } => "client_error",
        }
    }

    /// The `code` label of the attempt: the upstream's status when there was one.
    pub fn metric_code(&self) -> String {
        match self {
            Failure::Server { status } | Failure::Client { status } | Failure::Auth { status } => {
                status.to_string()
            }
            Failure::RateLimited { .. } => "429".into(),
            Failure::NotFound => "404".into(),
            other => other.reason().into(),
        }
    }

    /// The HTTP status a client sees when this is the last failure.
    pub fn status(&self) -> u16 {
        match self {
            Failure::Connect => 502,
            Failure::Timeout => 504,
            Failure::RateLimited { .. } => 429,
            Failure::Server { status } => *status,
            Failure::Auth { .. } | Failure::Malformed | Failure::NotFound => 502,
            Failure::Client { status } => *status,
        }
    }

    /// Classifies an upstream HTTP status that is not a success.
    pub fn from_status(status: u16, retry_after: Option<&str>) -> Failure {
        match status {
            429 => Failure::RateLimited {
                retry_after: retry_after.and_then(parse_retry_after),
            },
            500..=599 => Failure::Server { status },
            // 408 is the upstream timing out our request: another backend may do better.
            408 => Failure::Timeout,
            401 | 403 => Failure::Auth { status },
            404 => Failure::NotFound,
            s => Failure::Client { status: s },
        }
    }
}

/// `Retry-After` in seconds (the HTTP-date form is rare from LLM APIs and ignored).
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let secs: f64 = v.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)))
}

/// A retry budget as Envoy's `retry_budget`: retries *in flight* may be at most `percent` of
/// the requests in flight, and at least `min_concurrency`. Counting concurrency rather than a
/// rate keeps what a budget is for — an outage cannot multiply the load on slow, struggling
/// upstreams, because retries that pile up are refused — while fast failures (a refused
/// connection, a stream cut before its first token) can fail over for every request, as a
/// healthy fallback tier needs. A rate budget (20% of recent requests) failed 45% of
/// streamed requests over when one provider cut every stream.
pub struct RetryBudget {
    percent: f64,
    min_concurrency: usize,
    requests: Arc<AtomicUsize>,
    retries: Arc<AtomicUsize>,
}

/// Counts one client request (or one retry) as in flight until dropped.
pub struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl RetryBudget {
    pub fn new(percent: f64, min_concurrency: usize) -> Self {
        Self {
            percent,
            min_concurrency,
            requests: Arc::default(),
            retries: Arc::default(),
        }
    }

    /// Counts a client request as in flight until the guard drops.
    pub fn deposit(&self) -> InFlight {
        self.requests.fetch_add(1, Ordering::AcqRel);
        InFlight(self.requests.clone())
    }

    /// Takes one retry if the budget allows it; the retry counts as in flight until the
    /// guard drops.
    pub fn withdraw(&self) -> Option<InFlight> {
        let allowed = ((self.percent * self.requests.load(Ordering::Acquire) as f64) as usize)
            .max(self.min_concurrency);
        let taken = self
            .retries
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |r| {
                (r < allowed).then_some(r + 1)
            });
        taken.ok().map(|_| InFlight(self.retries.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_statuses() {
        assert_eq!(
            Failure::from_status(429, Some("3")),
            Failure::RateLimited {
                retry_after: Some(Duration::from_secs(3))
            }
        );
        assert!(Failure::from_status(503, None).retryable());
        assert!(Failure::from_status(401, None).retryable());
        assert_eq!(Failure::from_status(403, None).status(), 502);
        // The gateway chose the model id and URL: a 404 is the backend's fault.
        assert_eq!(Failure::from_status(404, None), Failure::NotFound);
        assert!(Failure::NotFound.retryable());
        assert_eq!(Failure::NotFound.status(), 502);
        for s in [400, 413, 422] {
            assert!(
                !Failure::from_status(s, None).retryable(),
                "{s} must not be retried"
            );
        }
        assert!(Failure::Malformed.retryable() && Failure::Timeout.retryable());
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn budget_allows_the_floor_then_a_share_of_requests_in_flight() {
        let b = RetryBudget::new(0.2, 2);
        let (r1, r2) = (b.withdraw(), b.withdraw());
        assert!(r1.is_some() && r2.is_some());
        assert!(b.withdraw().is_none(), "beyond the floor without traffic");
        let requests: Vec<_> = (0..20).map(|_| b.deposit()).collect();
        let more: Vec<_> = (0..2).map(|_| b.withdraw()).collect();
        assert!(more.iter().all(Option::is_some));
        assert!(
            b.withdraw().is_none(),
            "20% of 20 requests in flight is 4 retries"
        );
        drop(more);
        assert!(
            b.withdraw().is_some(),
            "a finished retry gives its place back"
        );
        drop(requests);
        drop((r1, r2));
    }

    #[test]
    fn fast_failures_can_fail_over_every_request() {
        // One request at a time, each failing once and retried at once: a rate budget of 20%
        // refused four retries in five; in flight, there is only ever one retry.
        let b = RetryBudget::new(0.2, 3);
        for _ in 0..1000 {
            let _request = b.deposit();
            assert!(b.withdraw().is_some());
        }
    }
}
