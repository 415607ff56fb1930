//! Outlier ejection, Envoy's way: a host (a pod of a self-hosted backend, or an external
//! backend as a whole) that fails `consecutive_failures` times in a row (5xx, connect
//! failure, timeout) gets no requests for `base_ejection × times ejected`, capped at
//! `MAX_EJECTION`. At most `max_ejection_percent` of a backend's hosts are ejected at
//! once, but one always may be, so a single-host external backend can be ejected too.
//!
//! The detector is pure: every call takes `now`, so tests drive it with a fake clock. There is
//! one per backend.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Envoy's `max_ejection_time` default: repeated ejections stop growing here.
pub const MAX_EJECTION: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutlierConfig {
    pub consecutive_failures: u32,
    pub base_ejection: Duration,
    pub max_ejection_percent: u32,
}

impl Default for OutlierConfig {
    /// Envoy's defaults.
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            base_ejection: Duration::from_secs(30),
            max_ejection_percent: 50,
        }
    }
}

#[derive(Debug, Default)]
struct HostState {
    consecutive: u32,
    times_ejected: u32,
    ejected_until: Option<Instant>,
}

impl HostState {
    fn ejected(&self, now: Instant) -> bool {
        self.ejected_until.is_some_and(|t| t > now)
    }
}

/// A new ejection, for the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ejection {
    pub duration: Duration,
    pub times: u32,
}

/// The hosts of one backend. Each backend owns its detector (held by the routing snapshot and
/// carried across rebuilds), so recording an attempt never touches another backend's state.
#[derive(Debug, Default)]
pub struct Detector {
    cfg: OutlierConfig,
    /// Endpoint (`IP:port`, or empty for an external backend) → state.
    hosts: HashMap<String, HostState>,
}

impl Detector {
    pub fn new(cfg: OutlierConfig) -> Self {
        Self {
            cfg,
            hosts: HashMap::new(),
        }
    }

    /// Records the result of one attempt on `endpoint`, one of the `hosts` endpoints the
    /// backend has now. Returns the ejection it caused, if any.
    pub fn record(
        &mut self,
        endpoint: &str,
        hosts: usize,
        failed: bool,
        now: Instant,
    ) -> Option<Ejection> {
        let cfg = self.cfg;
        let ejected_now = self.hosts.values().filter(|h| h.ejected(now)).count();
        // Look up before inserting: the common case allocates no key.
        if !self.hosts.contains_key(endpoint) {
            self.hosts.insert(endpoint.to_owned(), HostState::default());
        }
        let state = self.hosts.get_mut(endpoint)?;
        if !failed {
            state.consecutive = 0;
            return None;
        }
        if state.ejected(now) || cfg.consecutive_failures == 0 {
            // Requests sent before the ejection (or in panic mode) do not extend it.
            return None;
        }
        state.consecutive += 1;
        if state.consecutive < cfg.consecutive_failures {
            return None;
        }
        // Envoy ejects while the ejected share stays within the limit, and always allows one.
        let total = hosts.max(1) as u64;
        let allowed = ejected_now == 0
            || (ejected_now as u64 + 1) * 100 <= u64::from(cfg.max_ejection_percent) * total;
        if !allowed {
            return None;
        }
        state.consecutive = 0;
        state.times_ejected += 1;
        let duration = cfg
            .base_ejection
            .saturating_mul(state.times_ejected)
            .min(MAX_EJECTION.max(cfg.base_ejection));
        state.ejected_until = Some(now + duration);
        Some(Ejection {
            duration,
            times: state.times_ejected,
        })
    }

    pub fn is_ejected(&self, endpoint: &str, now: Instant) -> bool {
        self.hosts.get(endpoint).is_some_and(|h| h.ejected(now))
    }

    /// Endpoints of the backend ejected now.
    pub fn ejected_count(&self, now: Instant) -> usize {
        self.hosts.values().filter(|h| h.ejected(now)).count()
    }

    /// Ends the ejections that are over; returns whether the count changed.
    pub fn sweep(&mut self, now: Instant) -> bool {
        let mut any = false;
        for h in self.hosts.values_mut() {
            if h.ejected_until.is_some_and(|t| t <= now) {
                h.ejected_until = None;
                h.consecutive = 0;
                any = true;
            }
        }
        any
    }

    /// Which of `endpoints` may get requests: the ones not ejected, or all of them when fewer
    /// than half are healthy (Envoy's panic threshold: better to spread the load over every
    /// pod than to crush the few left).
    ///
    /// A pod that is no longer listed is forgotten: Kubernetes may give its address to the
    /// pod that replaces it, which must not inherit its ejection (Envoy forgets a removed
    /// host the same way).
    pub fn usable<'a, T>(
        &mut self,
        endpoints: &'a [T],
        address: impl Fn(&T) -> &str,
        now: Instant,
    ) -> Vec<&'a T> {
        if self.hosts.is_empty() {
            return endpoints.iter().collect();
        }
        self.hosts
            .retain(|a, _| endpoints.iter().any(|e| address(e) == a.as_str()));
        let healthy: Vec<&T> = endpoints
            .iter()
            .filter(|e| !self.hosts.get(address(e)).is_some_and(|h| h.ejected(now)))
            .collect();
        if healthy.len() * 2 < endpoints.len() {
            endpoints.iter().collect()
        } else {
            healthy
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(endpoint: &str) -> &str {
        endpoint
    }

    fn fail(d: &mut Detector, h: &str, hosts: usize, n: u32, now: Instant) -> Option<Ejection> {
        let mut last = None;
        for _ in 0..n {
            last = d.record(h, hosts, true, now);
        }
        last
    }

    #[test]
    fn five_consecutive_failures_eject_and_a_success_resets_the_count() {
        let now = Instant::now();
        let mut d = Detector::new(OutlierConfig::default());
        let h = "";
        assert_eq!(fail(&mut d, h, 1, 4, now), None);
        d.record(h, 1, false, now);
        assert_eq!(fail(&mut d, h, 1, 4, now), None, "the success reset it");
        assert!(!d.is_ejected(h, now));
        let e = d.record(h, 1, true, now).expect("fifth in a row ejects");
        assert_eq!(e.duration, Duration::from_secs(30));
        assert!(d.is_ejected(h, now + Duration::from_secs(29)));
        assert!(!d.is_ejected(h, now + Duration::from_secs(30)));
    }

    #[test]
    fn each_ejection_lasts_base_times_count_up_to_the_cap() {
        let mut now = Instant::now();
        let mut d = Detector::new(OutlierConfig::default());
        let h = "";
        for times in 1..=12u32 {
            let e = fail(&mut d, h, 1, 5, now).expect("ejects");
            let want = Duration::from_secs(30 * u64::from(times)).min(MAX_EJECTION);
            assert_eq!((e.times, e.duration), (times, want));
            now += e.duration;
            assert!(d.sweep(now));
            assert!(!d.is_ejected(h, now));
        }
    }

    #[test]
    fn failures_while_ejected_do_not_extend_it() {
        let now = Instant::now();
        let mut d = Detector::new(OutlierConfig::default());
        let h = "";
        fail(&mut d, h, 1, 5, now).unwrap();
        assert_eq!(fail(&mut d, h, 1, 20, now + Duration::from_secs(1)), None);
        assert!(!d.is_ejected(h, now + Duration::from_secs(30)));
    }

    #[test]
    fn at_most_half_of_a_backends_pods_are_ejected_but_always_one() {
        let now = Instant::now();
        let mut d = Detector::new(OutlierConfig::default());
        let pods: Vec<String> = (0..4).map(|i| format!("10.0.0.{i}:8000")).collect();
        assert!(fail(&mut d, &pods[0], 4, 5, now).is_some());
        assert!(fail(&mut d, &pods[1], 4, 5, now).is_some());
        assert_eq!(
            fail(&mut d, &pods[2], 4, 5, now),
            None,
            "a third of four is over 50%"
        );
        assert_eq!(d.ejected_count(now), 2);

        // Three pods at 50%: only one (1.5 rounds down), and one is always allowed.
        let mut d = Detector::new(OutlierConfig::default());
        assert!(fail(&mut d, &pods[0], 3, 5, now).is_some());
        assert_eq!(fail(&mut d, &pods[1], 3, 5, now), None);
        // A 0% limit still ejects one host, as Envoy does.
        let mut d = Detector::new(OutlierConfig {
            max_ejection_percent: 0,
            ..OutlierConfig::default()
        });
        assert!(fail(&mut d, host(""), 1, 5, now).is_some());
    }

    #[test]
    fn configured_numbers_apply() {
        let now = Instant::now();
        let mut d = Detector::new(OutlierConfig {
            consecutive_failures: 2,
            base_ejection: Duration::from_secs(1),
            max_ejection_percent: 100,
        });
        let pods: Vec<String> = (0..2).map(|i| i.to_string()).collect();
        assert!(fail(&mut d, &pods[0], 2, 2, now).is_some());
        assert!(fail(&mut d, &pods[1], 2, 2, now).is_some());
        assert_eq!(d.ejected_count(now), 2);
        assert!(d.sweep(now + Duration::from_secs(1)));
        assert_eq!(d.ejected_count(now + Duration::from_secs(1)), 0);
    }

    #[test]
    fn a_pod_that_left_is_forgotten_so_its_address_starts_healthy() {
        let mut d = Detector::new(OutlierConfig::default());
        let now = Instant::now();
        let pods = vec!["10.0.0.1:8000".to_owned(), "10.0.0.2:8000".to_owned()];
        for _ in 0..5 {
            d.record(host("10.0.0.1:8000"), 2, true, now);
        }
        assert_eq!(d.usable(&pods, String::as_str, now), vec![&pods[1]]);
        // The pod is deleted; a replacement gets its address.
        assert_eq!(d.usable(&pods[1..], String::as_str, now), vec![&pods[1]]);
        assert_eq!(d.usable(&pods, String::as_str, now).len(), 2);
    }

    #[test]
    fn pods_in_use_leave_out_the_ejected_unless_fewer_than_half_are_healthy() {
        let now = Instant::now();
        let mut d = Detector::new(OutlierConfig {
            max_ejection_percent: 100,
            ..OutlierConfig::default()
        });
        let eps: Vec<String> = (0..4).map(|i| format!("10.0.0.{i}:8000")).collect();
        assert_eq!(d.usable(&eps, String::as_str, now).len(), 4);
        for e in &eps[..2] {
            fail(&mut d, host(e), 4, 5, now).unwrap();
        }
        let usable = d.usable(&eps, String::as_str, now);
        assert_eq!(usable, vec![&eps[2], &eps[3]], "half healthy: no panic");
        fail(&mut d, host(&eps[2]), 4, 5, now).unwrap();
        assert_eq!(
            d.usable(&eps, String::as_str, now).len(),
            4,
            "one of four healthy: panic, use all"
        );
    }
}
