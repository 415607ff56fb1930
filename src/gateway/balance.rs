//! Choosing where a request goes: smooth weighted round-robin across a route's backends
//! (so 5% is 5% even at low volume, with no bursts), and the least-loaded pod within a
//! self-hosted backend.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::api::WeightedBackend;

/// Smooth weighted round-robin (the nginx algorithm): every pick adds each backend's weight
/// to its running score, takes the highest, and subtracts the total from it. Over any
/// window of `total` picks each backend is chosen exactly `weight` times, interleaved.
#[derive(Debug, Default)]
pub struct SmoothWeighted {
    weights: Vec<WeightedBackend>,
    current: Vec<i64>,
}

impl SmoothWeighted {
    /// Picks the next backend, restarting the sequence when the split changed.
    pub fn pick(&mut self, weights: &[WeightedBackend]) -> Option<String> {
        if self.weights != weights {
            self.weights = weights.to_vec();
            self.current = vec![0; weights.len()];
        }
        let total: i64 = weights.iter().map(|w| i64::from(w.weight.max(0))).sum();
        if total == 0 {
            return None;
        }
        let mut best = 0;
        for (i, w) in weights.iter().enumerate() {
            self.current[i] += i64::from(w.weight.max(0));
            if self.current[i] > self.current[best] {
                best = i;
            }
        }
        self.current[best] -= total;
        Some(weights[best].name.clone())
    }
}

/// One smooth weighted round-robin per route.
#[derive(Default)]
pub struct Balancers {
    routes: Mutex<HashMap<String, SmoothWeighted>>,
}

impl Balancers {
    pub fn pick(&self, route_key: &str, weights: &[WeightedBackend]) -> Option<String> {
        let mut routes = self.routes.lock().expect("balancer lock");
        routes
            .entry(route_key.to_owned())
            .or_default()
            .pick(weights)
    }
}

/// Requests in flight per pod address, for least-loaded picks.
#[derive(Default)]
pub struct InFlight {
    counts: Mutex<HashMap<String, usize>>,
}

/// Decrements its address's count when dropped, however the request ends.
pub struct InFlightGuard {
    owner: Arc<InFlight>,
    address: String,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let mut counts = self.owner.counts.lock().expect("in-flight lock");
        if let Some(c) = counts.get_mut(&self.address) {
            *c = c.saturating_sub(1);
            if *c == 0 {
                counts.remove(&self.address);
            }
        }
    }
}

impl InFlight {
    /// Picks the address with the fewest requests in flight (ties: the first listed, so
    /// callers can rotate the list) and counts the new request against it.
    pub fn acquire(self: &Arc<Self>, addresses: &[String]) -> Option<InFlightGuard> {
        let mut counts = self.counts.lock().expect("in-flight lock");
        let address = addresses
            .iter()
            .min_by_key(|a| counts.get(*a).copied().unwrap_or(0))?
            .clone();
        *counts.entry(address.clone()).or_default() += 1;
        Some(InFlightGuard {
            owner: self.clone(),
            address,
        })
    }
}

impl InFlightGuard {
    pub fn address(&self) -> &str {
        &self.address
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(pairs: &[(&str, i32)]) -> Vec<WeightedBackend> {
        pairs
            .iter()
            .map(|(n, w)| WeightedBackend {
                name: (*n).into(),
                weight: *w,
            })
            .collect()
    }

    #[test]
    fn five_percent_is_exact_in_every_window_of_twenty() {
        let w = split(&[("openai", 95), ("llama", 5)]);
        let mut b = SmoothWeighted::default();
        for _ in 0..10 {
            let window: Vec<_> = (0..100).map(|_| b.pick(&w).unwrap()).collect();
            assert_eq!(window.iter().filter(|n| *n == "llama").count(), 5);
            // Spread out, never two in a row.
            assert!(
                !window
                    .windows(2)
                    .any(|p| p[0] == "llama" && p[1] == "llama")
            );
        }
        let w = split(&[("a", 19), ("b", 1)]);
        let first20: Vec<_> = (0..20).map(|_| b.pick(&w).unwrap()).collect();
        assert_eq!(first20.iter().filter(|n| *n == "b").count(), 1);
    }

    #[test]
    fn three_way_and_zero_weights() {
        let w = split(&[("a", 60), ("b", 30), ("c", 10), ("d", 0)]);
        let mut b = SmoothWeighted::default();
        let picks: Vec<_> = (0..1000).map(|_| b.pick(&w).unwrap()).collect();
        let count = |n: &str| picks.iter().filter(|p| *p == n).count();
        assert_eq!(
            (count("a"), count("b"), count("c"), count("d")),
            (600, 300, 100, 0)
        );
        assert_eq!(b.pick(&split(&[("a", 0)])), None);
    }

    #[test]
    fn least_in_flight_spreads_and_releases() {
        let f = Arc::new(InFlight::default());
        let addrs = vec!["p1".to_owned(), "p2".to_owned()];
        let g1 = f.acquire(&addrs).unwrap();
        let g2 = f.acquire(&addrs).unwrap();
        assert_ne!(g1.address(), g2.address());
        let busy = g1.address().to_owned();
        drop(g2);
        let g3 = f.acquire(&addrs).unwrap();
        assert_ne!(g3.address(), busy);
    }
}
