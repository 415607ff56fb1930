//! Choosing where a request goes: smooth weighted round-robin across a route's backends
//! (so 5% is 5% even at low volume, with no bursts), and the least-loaded pod within a
//! self-hosted backend.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Smooth weighted round-robin (the nginx algorithm): every pick adds each backend's weight
/// to its running score, takes the highest, and subtracts the total from it. Over any
/// window of `total` picks each backend is chosen exactly `weight` times, interleaved.
///
/// The weights are fixed for its life: a route whose split changes gets a new one (the
/// sequence restarts), one whose split stays keeps it across configuration rebuilds.
#[derive(Debug, Default)]
pub struct SmoothWeighted {
    weights: Vec<i64>,
    current: Vec<i64>,
    total: i64,
}

impl SmoothWeighted {
    pub fn new(weights: impl IntoIterator<Item = i32>) -> Self {
        let weights: Vec<i64> = weights.into_iter().map(|w| i64::from(w.max(0))).collect();
        Self {
            current: vec![0; weights.len()],
            total: weights.iter().sum(),
            weights,
        }
    }

    /// Whether this sequence is for `weights`.
    pub fn is_for(&self, weights: impl ExactSizeIterator<Item = i32>) -> bool {
        weights.len() == self.weights.len()
            && weights
                .zip(&self.weights)
                .all(|(a, b)| i64::from(a.max(0)) == *b)
    }

    /// The index of the next backend; `None` when every weight is 0.
    pub fn pick(&mut self) -> Option<usize> {
        if self.total == 0 {
            return None;
        }
        let mut best = 0;
        for (i, w) in self.weights.iter().enumerate() {
            self.current[i] += w;
            if self.current[i] > self.current[best] {
                best = i;
            }
        }
        self.current[best] -= self.total;
        Some(best)
    }
}

/// Requests in flight on one pod, for least-loaded picks. Kept across configuration
/// rebuilds for as long as the pod's address is listed.
#[derive(Debug, Default)]
pub struct InFlight(AtomicUsize);

/// Counts one request against its pod until dropped, however the request ends.
pub struct InFlightGuard<P: AsRef<InFlight>> {
    pod: P,
}

impl<P: AsRef<InFlight>> Drop for InFlightGuard<P> {
    fn drop(&mut self) {
        self.pod.as_ref().0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<P: AsRef<InFlight>> InFlightGuard<P> {
    pub fn pod(&self) -> &P {
        &self.pod
    }
}

impl InFlight {
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// Picks the pod with the fewest requests in flight, starting the search at `start` so ties
/// spread evenly, and counts the new request against it.
pub fn least_loaded<P: AsRef<InFlight> + Clone>(
    pods: &[&P],
    start: usize,
) -> Option<InFlightGuard<P>> {
    let n = pods.len();
    let best = (0..n)
        .map(|i| pods[(start + i) % n])
        .min_by_key(|p| p.as_ref().get())?;
    best.as_ref().0.fetch_add(1, Ordering::Relaxed);
    Some(InFlightGuard { pod: best.clone() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn names<'a>(pairs: &[(&'a str, i32)]) -> (Vec<&'a str>, SmoothWeighted) {
        (
            pairs.iter().map(|(n, _)| *n).collect(),
            SmoothWeighted::new(pairs.iter().map(|(_, w)| *w)),
        )
    }

    #[test]
    fn five_percent_is_exact_in_every_window_of_twenty() {
        let (n, mut b) = names(&[("openai", 95), ("llama", 5)]);
        for _ in 0..10 {
            let window: Vec<_> = (0..100).map(|_| n[b.pick().unwrap()]).collect();
            assert_eq!(window.iter().filter(|n| **n == "llama").count(), 5);
            // Spread out, never two in a row.
            assert!(
                !window
                    .windows(2)
                    .any(|p| p[0] == "llama" && p[1] == "llama")
            );
        }
        let (n, mut b) = names(&[("a", 19), ("b", 1)]);
        let first20: Vec<_> = (0..20).map(|_| n[b.pick().unwrap()]).collect();
        assert_eq!(first20.iter().filter(|n| **n == "b").count(), 1);
    }

    #[test]
    fn three_way_and_zero_weights() {
        let (n, mut b) = names(&[("a", 60), ("b", 30), ("c", 10), ("d", 0)]);
        let picks: Vec<_> = (0..1000).map(|_| n[b.pick().unwrap()]).collect();
        let count = |x: &str| picks.iter().filter(|p| **p == x).count();
        assert_eq!(
            (count("a"), count("b"), count("c"), count("d")),
            (600, 300, 100, 0)
        );
        assert_eq!(SmoothWeighted::new([0]).pick(), None);
        assert!(b.is_for([60, 30, 10, 0].into_iter()));
        assert!(!b.is_for([60, 30, 10, 1].into_iter()));
        assert!(!b.is_for([60, 30, 10].into_iter()));
    }

    #[test]
    fn least_in_flight_spreads_and_releases() {
        let pods = [Arc::new(InFlight::default()), Arc::new(InFlight::default())];
        let all: Vec<&Arc<InFlight>> = pods.iter().collect();
        let g1 = least_loaded(&all, 0).unwrap();
        let g2 = least_loaded(&all, 0).unwrap();
        assert!(!Arc::ptr_eq(g1.pod(), g2.pod()));
        let busy = g1.pod().clone();
        drop(g2);
        let g3 = least_loaded(&all, 0).unwrap();
        assert!(!Arc::ptr_eq(g3.pod(), &busy));
        drop((g1, g3));
        assert_eq!(pods.iter().map(|p| p.get()).sum::<usize>(), 0);
    }
}
