//! What went wrong with one attempt, whether another tier may be tried, and how many
//! retries the gateway allows itself so that an outage cannot multiply load.

use std::sync::Mutex;
use std::time::{Duration, Instant};

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
    /// 3xx (or 1xx): the backend sent the request elsewhere. Never followed: the request
    /// carries the backend's credential, and its baseUrl should name the final place.
    Redirect { status: u16 },
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
            Failure::Redirect { .. } => "redirect",
            Failure::Client { .. } => "client_error",
        }
    }

    /// The `code` label of the attempt: the upstream's status when there was one.
    pub fn metric_code(&self) -> String {
        match self {
            Failure::Server { status }
            | Failure::Client { status }
            | Failure::Auth { status }
            | Failure::Redirect { status } => status.to_string(),
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
            Failure::Auth { .. }
            | Failure::Malformed
            | Failure::NotFound
            | Failure::Redirect { .. } => 502,
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
            s if !(400..500).contains(&s) => Failure::Redirect { status: s },
            s => Failure::Client { status: s },
        }
    }
}

/// `Retry-After` in seconds (the HTTP-date form is rare from LLM APIs and ignored).
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let secs: f64 = v.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)))
}

/// A retry budget in the style of Finagle and Linkerd: retries may add at most `ratio` of
/// the recent request rate, plus a floor so low traffic can still fail over. The gateway uses
/// their defaults, 20% plus 10 retries a second: a floor of one a second let a provider that
/// cut every stream before its first token fail a tenth of the requests it should have
/// failed over (retries go to another backend, and outlier ejection and Retry-After cool-downs
/// stop load on a failing one, so the floor does not feed a storm).
pub struct RetryBudget {
    ratio: f64,
    floor: u32,
    window: Duration,
    state: Mutex<Window>,
}

struct Window {
    started: Instant,
    requests: u32,
    retries: u32,
}

impl RetryBudget {
    pub fn new(ratio: f64, floor: u32, window: Duration) -> Self {
        Self {
            ratio,
            floor,
            window,
            state: Mutex::new(Window {
                started: Instant::now(),
                requests: 0,
                retries: 0,
            }),
        }
    }

    fn roll(&self, w: &mut Window) {
        if w.started.elapsed() >= self.window {
            *w = Window {
                started: Instant::now(),
                requests: 0,
                retries: 0,
            };
        }
    }

    /// Counts a new client request.
    pub fn deposit(&self) {
        let mut w = self.state.lock().expect("retry budget lock");
        self.roll(&mut w);
        w.requests += 1;
    }

    /// Takes one retry if the budget allows it.
    pub fn withdraw(&self) -> bool {
        let mut w = self.state.lock().expect("retry budget lock");
        self.roll(&mut w);
        let allowed = self.floor as f64 + self.ratio * w.requests as f64;
        if (w.retries as f64) < allowed {
            w.retries += 1;
            true
        } else {
            false
        }
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
    fn budget_allows_the_floor_then_a_share_of_traffic() {
        let b = RetryBudget::new(0.2, 2, Duration::from_secs(60));
        assert!(b.withdraw() && b.withdraw());
        assert!(!b.withdraw(), "beyond the floor without traffic");
        for _ in 0..10 {
            b.deposit();
        }
        assert!(b.withdraw() && b.withdraw());
        assert!(!b.withdraw(), "20% of 10 requests is 2 retries");
    }
}
